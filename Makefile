# Two commands on a fresh machine: `make demo` and `make test`. Both create .venv and install
# digitrec with everything it needs (CPU PyTorch pinned in pyproject.toml's `train` extra; Keras for
# the bring-your-own-model test).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
OUT ?= out

.PHONY: install demo test browser clean

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --disable-pip-version-check -q -e '.[train,keras,dev]'
	touch $(STAMP)

# The browser test drives Debian's chromium; install it when it is missing (CI runs as root).
browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  echo "Installing chromium for the browser test..."; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq chromium >/dev/null; }

# The main job end to end: verified data, the shipped model evaluated into a report, and the sample
# photos, scans and drawings in examples/ predicted, with pictures of what the model saw.
demo: install
	$(BIN)/digitrec data fetch
	$(BIN)/digitrec data info
	$(BIN)/digitrec data explore --out $(OUT)/explore
	$(BIN)/digitrec evaluate --out $(OUT)/evaluate
	$(BIN)/digitrec predict examples/ --debug $(OUT)/predict-debug
	@echo
	@echo "Demo done. Open $(OUT)/evaluate/report.html in a browser; $(OUT)/explore and"
	@echo "$(OUT)/predict-debug hold the data pictures and what the model saw in each example."

test: install browser
	$(BIN)/python -m pytest

clean:
	rm -rf $(VENV) $(OUT) .pytest_cache

# Two commands on a fresh machine: `make demo` and `make test`. Both create .venv and install
# digitrec with everything it needs (CPU PyTorch pinned in pyproject.toml's `train` extra).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
OUT ?= out

.PHONY: install demo test browser clean

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --disable-pip-version-check -q -e '.[train,dev]'
	touch $(STAMP)

# The browser test drives Debian's chromium; install it when it is missing (CI runs as root).
browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  echo "Installing chromium for the browser test..."; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq chromium >/dev/null; }

demo: install
	$(BIN)/digitrec data fetch
	$(BIN)/digitrec data info
	$(BIN)/digitrec data explore --out $(OUT)/explore
	@echo "Demo done: open $(OUT)/ to see what it wrote."

test: install browser
	$(BIN)/python -m pytest

clean:
	rm -rf $(VENV) $(OUT) .pytest_cache

# Two commands on a fresh machine: `make demo` and `make test`. Both create .venv and install
# digitrec with every extra (`[all,dev]`: PyTorch pinned in the `train` extra, PyPI's CUDA build on
# Linux unless .venv holds the CPU build already, as the README says; Keras for the
# bring-your-own-model test), at the versions in constraints.txt, what the tests last passed with.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
OUT ?= out

CONSTRAINTS := constraints.txt

.PHONY: install demo test test-fast lint build constraints browser rejector-fonts clean

install: $(STAMP)

$(STAMP): pyproject.toml $(CONSTRAINTS)
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --disable-pip-version-check -q -c $(CONSTRAINTS) -e '.[all,dev]'
	touch $(STAMP)

# After an upgrade that passed `make test`: record what is installed as the new constraints.
constraints: install
	{ sed -n '1,2p' $(CONSTRAINTS); $(BIN)/pip freeze --exclude-editable | grep -vi '^digitrec' | sed 's/+cpu$$//'; } > $(CONSTRAINTS).new
	mv $(CONSTRAINTS).new $(CONSTRAINTS)

# The browser test drives Debian's chromium; install it when it is missing (CI runs as root).
browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  echo "Installing chromium for the browser test..."; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq chromium >/dev/null; }

# The fonts the shipped rejector's letters and font digits were drawn in (Debian packages; training
# only: the product never needs them). Handwriting-like ones first. `python -m digitrec.train.rejector`
# uses whatever fonts are installed, so train after this to get the shipped rejector's data.
REJECTOR_FONTS := fonts-humor-sans fonts-comic-neue fonts-breip fonts-dkg-handwriting fonts-bwht \
  fonts-femkeklaver fonts-dancingscript fonts-kaushanscript fonts-kristi fonts-cabinsketch \
  fonts-urw-base35 fonts-freefont-ttf fonts-cantarell fonts-linuxlibertine fonts-crosextra-caladea \
  fonts-crosextra-carlito fonts-go fonts-lato fonts-jura fonts-engadget fonts-dejavu-extra
rejector-fonts:
	SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get install -y --no-install-recommends $(REJECTOR_FONTS)

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

# No MNIST, no training, no browser: the quick loop while editing (under a minute).
test-fast: install
	$(BIN)/python -m pytest -q -m "not mnist and not slow and not browser"

# Lint, format check and types (strict on the prediction path: see [tool.mypy] in pyproject.toml).
lint: install
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks
	$(BIN)/mypy

# The wheel and sdist, checked to carry the shipped models, the web page and the recipes.
build: install
	rm -rf dist
	$(BIN)/python -m build --outdir dist . >/dev/null
	$(BIN)/python .ci/check_dist.py dist

clean:
	rm -rf $(VENV) $(OUT) .pytest_cache dist build

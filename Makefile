# `make demo` and `make test` each create .venv, install gimg into it, then run.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: demo test system-deps bench clean

$(BIN)/gimg: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test,train]'
	touch $@

system-deps:
	@command -v chromedriver >/dev/null || { $(SUDO) apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq chromium chromium-driver >/dev/null; }

demo: $(BIN)/gimg
	$(BIN)/gimg demo --out demo_out

test: system-deps $(BIN)/gimg
	$(BIN)/python -m pytest

clean:
	rm -rf $(VENV) demo_out

# Two entry points (see README): `make run` and `make test`. Both create .venv/ when needed.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
QT_DEBS := libxcb-icccm4 libxcb-keysyms1 libxcb-xkb1 libxkbcommon-x11-0 libxcb-render-util0 libxcb-image0 libxcb-shape0 libegl1 libgl1 libfontconfig1 libdbus-1-3

.PHONY: run test test-all deps venv

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(STAMP)

venv: $(STAMP)

# Debian libraries the Qt window needs (installed when we are root with apt-get; else the line to run).
deps:
	@if dpkg -s $(QT_DEBS) >/dev/null 2>&1; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  apt-get install -y --no-install-recommends $(QT_DEBS) >/dev/null 2>&1 || (apt-get update >/dev/null && apt-get install -y --no-install-recommends $(QT_DEBS)); \
	else echo "The Qt window needs: sudo apt-get install -y $(QT_DEBS)"; fi

run: $(STAMP) deps
	@if [ -n "$$DISPLAY$$WAYLAND_DISPLAY" ]; then $(BIN)/python main.py; \
	else \
	  if ! command -v xvfb-run >/dev/null && [ "$$(id -u)" = 0 ]; then apt-get install -y xvfb xauth >/dev/null 2>&1 || true; fi; \
	  if command -v xvfb-run >/dev/null; then echo "No display: running on a virtual X display (xvfb-run)."; xvfb-run -a -s "-screen 0 1600x1000x24" $(BIN)/python main.py; \
	  else echo "No display found. Set DISPLAY, or install xvfb (apt-get install -y xvfb) to run headless."; exit 1; fi; \
	fi

# The default run leaves out the tests marked slow (each has a fast smoke in the default run); test-all runs them too.
test: $(STAMP)
	QT_QPA_PLATFORM=offscreen $(BIN)/python -m pytest -q -m "not slow"

test-all: $(STAMP)
	QT_QPA_PLATFORM=offscreen $(BIN)/python -m pytest -q

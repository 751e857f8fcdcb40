# Two commands do all the set-up on a fresh machine:
#   make run    the whole system with demo content: central server, sync daemon and kiosk
#   make test   install what the tests need and run them
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
EXTRAS ?= kiosk,hw,sync,central,dev

.PHONY: run test bench system-deps clean translations

$(VENV)/.installed: setup.cfg pyproject.toml Makefile
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[$(EXTRAS)]'
	touch $@

system-deps:
	scripts/install-system-deps.sh

run: $(VENV)/.installed system-deps
	$(PY) scripts/run_demo.py

# The whole suite on SQLite, then the central server's tests again on a private PostgreSQL server.
test: $(VENV)/.installed system-deps
	$(PY) -m pytest -q -p no:cacheprovider
	$(PY) -m pytest -q -p no:cacheprovider -m central --central-db=postgresql

bench: $(VENV)/.installed system-deps
	$(PY) bench/press_to_durable.py
	$(PY) bench/sync_drain.py
	$(PY) bench/kiosk_ui.py
	$(PY) bench/box_link.py
	$(PY) bench/central_scale.py

clean:
	rm -rf $(VENV) var build *.egg-info

# Compile the kiosk's gettext catalogs (the .mo files are committed: a Pi needs no Babel)
translations: $(VENV)/.installed
	$(VENV)/bin/pybabel compile --domain terminal --directory terminal/locale --use-fuzzy

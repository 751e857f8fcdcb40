# Two commands do all the set-up on a fresh machine:
#   make run    the whole system with demo content: central server, sync daemon and kiosk
#   make test   install what the tests need and run them
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
EXTRAS ?= kiosk,hw,sync,central,s3,fleet,dev

.PHONY: run test bench bench-smoke system-deps clean translations docs fleet-check pi-image pi-check

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
# --durations: the slowest tests named in every run, so the 20 minutes this must stay within are watched.
test: $(VENV)/.installed system-deps
	$(PY) -m pytest -q -p no:cacheprovider --durations=15
	$(PY) -m pytest -q -p no:cacheprovider --durations=10 -m central --central-db=postgresql
	$(MAKE) --no-print-directory bench-smoke
	$(MAKE) --no-print-directory docs

bench: $(VENV)/.installed system-deps
	$(PY) bench/press_to_durable.py
	$(PY) bench/store_open.py
	$(PY) bench/sync_drain.py
	$(PY) bench/kiosk_ui.py
	$(PY) bench/box_link.py
	$(PY) bench/sync_drain.py --mix bad
	$(PY) bench/central_scale.py
	$(PY) bench/upward_push.py
	$(PY) bench/province.py --backend sqlite
	$(PY) bench/province.py --backend postgresql
	$(PY) bench/province.py --backend postgresql --nodes 2

# Every benchmark at small sizes (about a minute in all): one that breaks, or whose workload no
# longer matches what it says (the mixes are checked), fails the build. No timing is asserted.
bench-smoke: $(VENV)/.installed system-deps
	$(PY) bench/press_to_durable.py --n 50 --dir var/bench-smoke
	$(PY) bench/store_open.py --ratings 2000 --opens 5 --dir var/bench-smoke
	$(PY) bench/sync_drain.py --backlog 3000 --small 1000
	$(PY) bench/sync_drain.py --mix bad --backlog 2000 --small 1000
	$(PY) bench/kiosk_ui.py --presses 10 --starts 1
	$(PY) bench/box_link.py --presses 30
	$(PY) bench/central_scale.py --smoke
	$(PY) bench/upward_push.py --smoke
	$(PY) bench/province.py --smoke --nodes 2

# Installs for real into Debian roots made with debootstrap: hardware/install-pi.sh (install, then an
# upgrade to a box-only terminal), then the fleet playbook (hardware/ansible) into two roots as two
# terminals, a real central server, five runs (install; nothing to do; one window moved; --limit; an
# unknown window). A few minutes, so a target of its own with its own line in .ci/run; make test leaves
# them out (pytest marker fleet).
fleet-check: $(VENV)/.installed system-deps
	timeout 1200 $(PY) -m pytest -q -p no:cacheprovider -s --fleet tests/test_install_pi.py tests/test_fleet.py

# A Raspberry Pi card image (Debian 12 arm64, the terminal installed by hardware/install-pi.sh) in
# $(PI_IMAGE_DIR); HEADLESS=1: a box-only terminal. pi-check builds it, then proves it under
# qemu-user (tests/test_pi_image.py: provision, headless terminal with the simulated box, kiosk's first
# frame, doctor), printing each stage's time. Root, network (Debian mirror, PyPI), ~9 min.
PI_IMAGE_DIR ?= var/pi-image
pi-image: system-deps
	hardware/image/build.sh --out $(PI_IMAGE_DIR) $(if $(filter 1 yes true,$(HEADLESS)),--headless)

pi-check: $(VENV)/.installed system-deps
	@start=$$(date +%s); $(MAKE) --no-print-directory pi-image PI_IMAGE_DIR=$(PI_IMAGE_DIR) HEADLESS= && \
	$(PY) -m pytest -q -p no:cacheprovider -rA --durations=0 --timeout=1800 --pi-image=$(PI_IMAGE_DIR) \
	  tests/test_pi_image.py && echo "pi-check: passed in $$(( $$(date +%s) - start ))s"

# The documentation site (docs/ with MkDocs Material) into site/: strict, so broken links fail
docs: $(VENV)/.installed
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict --quiet

clean:
	rm -rf $(VENV) var build site *.egg-info

# Compile the kiosk's gettext catalogs (the .mo files are committed: a Pi needs no Babel)
translations: $(VENV)/.installed
	$(VENV)/bin/pybabel compile --domain terminal --directory terminal/locale --use-fuzzy

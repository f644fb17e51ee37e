# ecflow-remote: `make demo` and `make test` do all the set-up on a fresh Debian 12 machine (as root).
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: deps demo test unit lint bench clean centre-clean lock

deps: $(STAMP)
	@sh scripts/install-deps

# python3-ecflow is built for Debian's /usr/bin/python3 only, so the venv is made from it and sees its site-packages.
$(STAMP): pyproject.toml constraints.txt
	@sh scripts/install-deps
	/usr/bin/python3 -m venv --system-site-packages $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check -c constraints.txt -e '.[dev]'
	@touch $@

demo: deps
	$(PY) -m centre.demo

test: deps
	$(PY) -m pytest -q tests

unit: deps
	$(PY) -m pytest -q tests/unit

lint: deps
	$(VENV)/bin/ruff check src centre tests bench
	$(VENV)/bin/ruff format --check src centre tests bench
	$(VENV)/bin/mypy
	$(VENV)/bin/mypy bench/*.py

bench: deps
	PYTHONPATH=. $(PY) bench/run.py
	PYTHONPATH=. $(PY) bench/homelink.py

# A deliberate update of constraints.txt: the newest release of every dependency, in a scratch venv; then run
# make test (rm -rf .venv first) and commit the file with what it changed.
lock:
	rm -rf .venv-lock
	/usr/bin/python3 -m venv --system-site-packages .venv-lock
	.venv-lock/bin/python -m pip install -q --disable-pip-version-check -e '.[dev]'
	{ sed -n '/^#/p' constraints.txt; .venv-lock/bin/python -m pip freeze --local --exclude-editable; } > constraints.new
	mv constraints.new constraints.txt
	rm -rf .venv-lock

centre-clean: deps
	$(PY) -m centre cleanup

clean:
	rm -rf $(VENV) build src/*.egg-info .pytest_cache .mypy_cache .ruff_cache

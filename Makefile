# One command each: `make run` reproduces everything, `make test` runs every test.
# Both create the environment from the lock first when it is missing or older than the lock.
PYTHON ?= python3.11
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: run smoke test unit nbval lab mlflow-ui bench clean-outputs

$(VENV)/.installed: requirements-lock.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements-lock.txt
	# `utils` importable from any directory (nbval runs a notebook in its own folder).
	$(PY) -c 'import pathlib, sysconfig; pathlib.Path(sysconfig.get_paths()["purelib"], "lead2value.pth").write_text("$(CURDIR)\n")'
	touch $@

run: $(VENV)/.installed
	$(PY) run_all.py $(ARGS)

smoke: $(VENV)/.installed
	$(PY) run_all.py --profile smoke $(ARGS)

test: $(VENV)/.installed
	$(PY) -m pytest tests
	LEAD2VALUE_OUTPUTS=$(CURDIR)/outputs/nbval $(PY) -m pytest --nbval-lax --sanitize-with tests/nbval_sanitize.cfg -p no:cacheprovider notebooks

unit: $(VENV)/.installed
	$(PY) -m pytest tests -m "not slow"

nbval: $(VENV)/.installed
	LEAD2VALUE_OUTPUTS=$(CURDIR)/outputs/nbval $(PY) -m pytest --nbval-lax --sanitize-with tests/nbval_sanitize.cfg -p no:cacheprovider notebooks

lab: $(VENV)/.installed
	$(PY) -m jupyter lab

mlflow-ui: $(VENV)/.installed
	$(PY) -m mlflow ui --backend-store-uri sqlite:///outputs/mlflow/mlflow.db --port 5000

bench: $(VENV)/.installed
	$(PY) bench/bench_rerun.py
	$(PY) bench/bench_scoring.py

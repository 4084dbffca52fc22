# One command each: `make run` reproduces everything, `make test` runs every test.
# Both create the environment from the lock first when it is missing or older than the lock.
PYTHON ?= python3.11
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: run smoke class test unit nbval lab mlflow-ui bench clean-outputs airflow airflow-ui book

$(VENV)/.installed: requirements-lock.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements-lock.txt
	# `utils` importable from any directory (nbval runs a notebook in its own folder).
	$(PY) -c 'import pathlib, sysconfig; pathlib.Path(sysconfig.get_paths()["purelib"], "lead2value.pth").write_text("$(CURDIR)\n")'
	# dash (pycaret -> plotly-resampler) ships a JupyterLab source extension that asks for a rebuild
	# ("Build Recommended") every time; nothing here uses it, so JupyterLab is told not to ask.
	mkdir -p $(VENV)/etc/jupyter/labconfig
	echo '{"buildCheck": false, "buildAvailable": false}' > $(VENV)/etc/jupyter/labconfig/page_config.json
	touch $@

# Airflow lives in its own venv (its pins clash with pycaret's); the DAGs run the project's code in $(VENV).
AIRFLOW_VENV ?= .venv-airflow
AIRFLOW_ENV := AIRFLOW_HOME=$(CURDIR)/outputs/airflow AIRFLOW__CORE__DAGS_FOLDER=$(CURDIR)/dags \
	AIRFLOW__CORE__LOAD_EXAMPLES=False AIRFLOW__WEBSERVER__WEB_SERVER_HOST=127.0.0.1 LEAD2VALUE_HOME=$(CURDIR)

$(AIRFLOW_VENV)/.installed: dags/requirements-airflow-lock.txt
	test -x $(AIRFLOW_VENV)/bin/python || $(PYTHON) -m venv $(AIRFLOW_VENV)
	$(AIRFLOW_VENV)/bin/pip install --quiet --upgrade pip
	$(AIRFLOW_VENV)/bin/pip install --quiet -r dags/requirements-airflow-lock.txt
	touch $@

airflow: $(VENV)/.installed $(AIRFLOW_VENV)/.installed
	$(AIRFLOW_ENV) $(AIRFLOW_VENV)/bin/airflow db migrate
	@echo "then: $(AIRFLOW_ENV) $(AIRFLOW_VENV)/bin/airflow dags test lead2value_training --conf '{\"profile\": \"smoke\"}'"
	@echo "  or, with files in outputs/inbox/leads/: $(AIRFLOW_ENV) $(AIRFLOW_VENV)/bin/airflow dags test lead2value_scoring"

airflow-ui: airflow
	$(AIRFLOW_ENV) PATH=$(CURDIR)/$(AIRFLOW_VENV)/bin:$$PATH $(AIRFLOW_VENV)/bin/airflow standalone

run: $(VENV)/.installed
	$(PY) run_all.py $(ARGS)

smoke: $(VENV)/.installed
	$(PY) run_all.py --profile smoke $(ARGS)

# A classroom: the smoke run gives every notebook what it reads (05 its champions), and the book of the run
# with the teaching notes. Then `make lab`. notebooks/TEACHING.md: order, time, exercises.
OUTPUTS_DIR = $${LEAD2VALUE_OUTPUTS:-$(CURDIR)/outputs}
class: $(VENV)/.installed
	$(PY) run_all.py --profile smoke $(ARGS)
	@echo
	@echo "The class is ready. The book of this run, with the teaching notes (open it in a browser, offline):"
	@echo "    $(OUTPUTS_DIR)/latest/book/index.html"
	@echo "JupyterLab, reachable from this machine only:"
	@echo "    make lab    # $(PY) -m jupyter lab $(LAB_FLAGS)"
	@echo "then open notebooks/00_data.ipynb and go in order (Run All in each); every notebook ends with Try it."

test: $(VENV)/.installed $(AIRFLOW_VENV)/.installed
	$(PY) -m pytest tests -n 2 --dist loadfile --basetemp=$(CURDIR)/outputs/pytest
	LEAD2VALUE_OUTPUTS=$(CURDIR)/outputs/nbval $(PY) -m pytest --nbval-lax --sanitize-with tests/nbval_sanitize.cfg -p no:cacheprovider notebooks

unit: $(VENV)/.installed
	$(PY) -m pytest tests -m "not slow"

nbval: $(VENV)/.installed
	LEAD2VALUE_OUTPUTS=$(CURDIR)/outputs/nbval $(PY) -m pytest --nbval-lax --sanitize-with tests/nbval_sanitize.cfg -p no:cacheprovider notebooks

book: $(VENV)/.installed
	$(PY) -m utils.pipeline.book $(RUN)

# Bound to this machine; as root (a container) JupyterLab refuses to start without --allow-root.
LAB_FLAGS := --ip=127.0.0.1 $(if $(filter 0,$(shell id -u)),--allow-root)
lab: $(VENV)/.installed
	$(PY) -m jupyter lab $(LAB_FLAGS)

mlflow-ui: $(VENV)/.installed
	$(PY) -m mlflow ui --backend-store-uri sqlite:///outputs/mlflow/mlflow.db --port 5000

bench: $(VENV)/.installed $(AIRFLOW_VENV)/.installed
	$(PY) bench/bench_rerun.py
	$(PY) bench/bench_scoring.py
	$(PY) bench/bench_scoring_job.py
	$(PY) bench/bench_airflow.py

# Entry points for a fresh machine: `make demo`, `make test` and `make wheel` (README.md).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip install --quiet --disable-pip-version-check

.PHONY: install demo test wheel clean

$(VENV)/.installed: requirements.lock setup.py
	$(PYTHON) -m venv $(VENV)
	# torch first, pinned: a looser requirement resolved first pulls a CUDA build
	$(PIP) torch==2.13.0
	$(PIP) -r requirements.lock
	# RecBole's PyPI metadata pins ray<=2.6.3 / colorlog==4.7.2: install it without deps
	$(PIP) --no-deps recbole==1.2.1
	$(PIP) --no-deps -e .
	touch $@

install: $(VENV)/.installed

demo: install
	$(PY) run_recbole_genrec.py --model=TIGER --loss=apao --dataset=Office --config_files=properties/demo.yaml

test: install
	$(PY) -m pytest -q tests

# a wheel in dist/ (properties/, dataset/Office and tuning/ ride along as package data)
wheel: install
	$(PY) -m pip wheel --quiet --no-deps --no-build-isolation --no-index -w dist .

clean:
	rm -rf $(VENV) log log_tensorboard saved build dist

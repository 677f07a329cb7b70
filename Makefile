# Every target creates .venv from nothing when it is missing; nothing else on the machine is used.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
# Test workers (pytest-xdist): most tests wait on servers and kernels, so more workers than cores pay
# (bench/RESULTS.md, section 5); TEST_WORKERS=0 runs everything in one process.
TEST_WORKERS ?= 4

.PHONY: demo test lab bench clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet -e '.[test,cluster]'
	$(PY) -m ipykernel install --sys-prefix --name netra-nb --display-name "Python (netra-nb)" >/dev/null
	$(PY) -m compileall -q netra_nb >/dev/null  # an editable install is not compiled by pip (netra_nb.engine.compile_package)
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/netra-nb demo $(ARGS)

test: $(STAMP)
	$(PY) -m pytest -q -n $(TEST_WORKERS) $(ARGS)

# JupyterLab refuses root unless told; containers and CI machines often run as root.
LAB_ROOT := $(if $(filter 0,$(shell id -u)),--allow-root,)

# At the repository root: the notebooks, the run folders under outputs/ and params/ all in reach.
lab: $(STAMP)
	$(VENV)/bin/jupyter lab --notebook-dir=. $(LAB_ROOT) $(ARGS)

bench: $(STAMP)
	$(PY) -m bench $(ARGS)

clean:
	rm -rf $(VENV) .pytest_cache

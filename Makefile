# The two set-up commands: `make demo` (the main job) and `make test` (the tests).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
SHARED ?= ../shared
PORT ?= 8000
# With no network, point the demo at local copies: `make demo DEMO_ARGS="--dataset ml-100k --source DIR --posters DIR"`.
# A checkout that has ../shared beside it (the project's offline data) uses it by default.
ifeq ($(origin DEMO_ARGS), undefined)
  ifneq ($(wildcard $(SHARED)/data/ml-100k/u.data),)
    DEMO_ARGS := --dataset ml-100k --source $(SHARED)/data/ml-100k --posters $(SHARED)/data/posters/ml-100k
    # Keras reads weights="imagenet" from $KERAS_HOME/models/ before downloading: the offline copies
    KERAS_OFFLINE := $(abspath .keras-home)
  endif
endif

.PHONY: demo test venv clean

$(BIN)/posterec: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ".[test,report,cluster]"
	touch $@

venv: $(BIN)/posterec

demo: venv
ifdef KERAS_OFFLINE
	mkdir -p $(KERAS_OFFLINE)/models && ln -sf $(abspath $(SHARED))/keras/models/* $(KERAS_OFFLINE)/models/
	KERAS_HOME=$(KERAS_OFFLINE) $(BIN)/posterec demo $(DEMO_ARGS) --port $(PORT)
else
	$(BIN)/posterec demo $(DEMO_ARGS) --port $(PORT)
endif

test: venv
	$(BIN)/python -m pytest -ra $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) posterec-home .pytest_cache .keras-home

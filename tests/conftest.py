"""Shared fixtures: the FM 5-0 data beside the repo, small QA files written per test, and one session-scoped
fixture per packaged model. Nothing is loaded at collection time and nothing comes from the network."""

from __future__ import annotations

import contextlib
import io
import json
import os
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path

import pytest

from harness_ext import DEFAULT_EVAL_TASKS  # fm5 eval's tasks: the probe and the QA tasks

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
if os.environ.get("PYTEST_XDIST_WORKER"):  # `make test`: one worker per core, so one thread per worker and per
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):  # process it starts (the fast lane
        os.environ.setdefault(var, "1")  # on 2 cores: 423 s with two threads per worker, 285 s with one)

REPO = Path(__file__).resolve().parents[1]
FM5 = (sys.executable, "-m", "fm5")  # the command line every subprocess test runs (`fm5 ...`)
SHARED_QA = Path(os.environ.get("FM5_SHARED", REPO.parent / "shared")) / "fm5" / "qa_pairs.jsonl"


# The order in which `make test` hands test modules to its two workers (`--dist loadfile --no-loadscope-reorder`):
# the longest first, so that the short ones fill the end, and test_training (the longest, no stock run) beside
# test_lm_eval_e2e (which builds the shared stock runs `base_run` and `adapter_run` at once), then the modules that
# need no stock run (knowledge, fuzz), so that those reading the runs (sweep, gate, ...) find them built instead of
# waiting on the other worker's lock. Costs, `pytest --durations` on 2 cores (2026-12-04, the second session,
# seconds): training 276, lm_eval_e2e 101, sweep 93, workflow 74, knowledge 70, distributed 66, decontamination 61,
# continuation 59, fuzz 57, gate 43, reports 31, probe 25. Unnamed modules follow.
MODULE_ORDER = ("test_training.py", "test_lm_eval_e2e.py", "test_knowledge.py", "test_fuzz.py", "test_sweep.py",
                "test_gate.py", "test_decontamination.py", "test_continuation.py", "test_distributed.py",
                "test_workflow.py", "test_probe.py", "test_reports.py", "test_data.py")


def pytest_collection_modifyitems(config, items):
    rank = {name: i for i, name in enumerate(MODULE_ORDER)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable: each module keeps its own order


def fm5_in_process(*argv: str) -> subprocess.CompletedProcess:
    """`fm5 ARGV` in this process, its exit status and output as `subprocess.run(FM5 + ARGV, capture_output=True,
    text=True)` reports them; argparse's exit counts as its status, any other exception propagates. For the tests of
    what a command does: the worker has imported torch, TRL and lm-eval already, where a fresh `python -m fm5` spends
    ~5 s of CPU importing them. What the command line and its process add (the entry point, a kill, torchrun) is
    tested through FM5."""
    from fm5 import cli

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = cli.main(list(argv))
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 2
    return subprocess.CompletedProcess([*FM5, *argv], code, out.getvalue(), err.getvalue())


def write_jsonl(path: Path, rows) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


@pytest.fixture(scope="session")
def shared_qa() -> Path:
    if not SHARED_QA.is_file():
        pytest.fail(f"FM 5-0 data not found at {SHARED_QA}; set FM5_SHARED to the shared/ folder")
    return SHARED_QA


@pytest.fixture(scope="session")
def shared_rows(shared_qa):
    from harness_ext.data import load_qa

    return load_qa(shared_qa)


@pytest.fixture(scope="session")
def small_qa(tmp_path_factory, shared_rows) -> Path:
    """80 real rows with short passages: a test split of 8 questions (4 seen, 4 unseen: the fewest with which every
    unseen question gets 3 distractors from its own group), quick to evaluate with --limit."""
    rows = sorted(shared_rows, key=lambda r: len(r["passage"]))[:80]
    return write_jsonl(tmp_path_factory.mktemp("data") / "small_qa.jsonl", rows)


def _session_root(tmp_path_factory) -> Path:
    """The folder every worker of this test session shares (under `pytest -n 2`, the workers' common parent)."""
    base = tmp_path_factory.getbasetemp()
    return base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base


@pytest.fixture(scope="session", autouse=True)
def fm5_cache(tmp_path_factory) -> Path:
    """The conversion and embedding cache of this test session (never the user's), one for all workers of
    `pytest -n 2` (the cache's writes are atomic, so each converted base and embedding is computed once)."""
    path = _session_root(tmp_path_factory) / "fm5_cache"
    path.mkdir(exist_ok=True)
    os.environ["FM5_CACHE"] = str(path)
    return path


@pytest.fixture(scope="session")
def smollm2_gguf() -> tuple[str, str]:
    from harness_ext.models import packaged_smollm2

    return packaged_smollm2()


@pytest.fixture(scope="session")
def smollm2(smollm2_gguf, fm5_cache):
    """(model, tokenizer, converted folder) of the packaged SmolLM2-135M, dequantized once per session."""
    from harness_ext.models import converted_base, load_base

    folder = converted_base(*smollm2_gguf)
    model, tokenizer = load_base(str(folder))
    model.eval()
    return model, tokenizer, folder


def read_samples(folder: Path, task: str) -> list[dict]:
    """The samples lm-eval logged for `task` in a model's output folder."""
    (path,) = folder.glob(f"samples_{task}_*.jsonl")
    return [json.loads(line) for line in path.read_text().splitlines()]


def read_results(folder: Path) -> dict:
    (path,) = folder.glob("results_*.json")
    return json.loads(path.read_text())


def run_lm_eval(out: Path, data: Path, model_args: str, *extra: str, limit: int = 2,
                tasks: str = "fm5_qa_open,fm5_qa_closed", metadata: dict | None = None) -> Path:
    """Stock `lm_eval` as a user runs it; returns the model's output folder."""
    cmd = [
        sys.executable, "-m", "lm_eval", "--include_path", str(REPO / "tasks"),
        "--tasks", tasks, "--apply_chat_template",
        "--model", "hf", "--model_args", model_args, "--device", "cpu", "--batch_size", "4",
        "--metadata", json.dumps(metadata or {"fm5_data": str(data)}), "--limit", str(limit),
        "--output_path", str(out), "--log_samples", *extra,
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=1200)
    assert proc.returncode == 0, proc.stderr[-3000:]
    folders = [p.parent for p in out.rglob("results_*.json")]
    assert len(folders) == 1, folders
    return folders[0]


# What the end-to-end `fm5 train` runs of the tests add to the embedded config: sequences of at most 256 tokens (every
# closed-book row of the shared file fits: 172 at most) and LoRA rank 8 (the plumbing they check depends on neither;
# the config's 1024 tokens and rank 64 take 36 s instead of 26 s per 4-step run, writing 230 MB checkpoints)
SMALL_TRAINING = ("--max_length", "256", "--lora_r", "8", "--lora_alpha", "16")

STOCK_LIMIT = 4  # questions per task of the shared stock runs (their batch size: run_lm_eval's 4)
STOCK_SETTINGS = ("--gen_kwargs", "max_gen_toks=32")


@contextmanager
def _once(tmp_path_factory, name: str):
    """Yields (folder, whether to build it): the first worker of the test session to ask builds under a lock and
    marks it built; every other worker waits for the mark and reads the same folder."""
    import fcntl

    root = _session_root(tmp_path_factory) / "shared"
    root.mkdir(exist_ok=True)
    with open(root / f"{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        built = root / f"{name}.built"
        yield root / name, not built.is_file()
        built.touch()


def _stock_run(tmp_path_factory, name: str, data: Path, model_args: str) -> Path:
    """A shared stock run: fm5 eval's default tasks (the probe and the QA tasks) with the settings above, once per
    test session."""
    with _once(tmp_path_factory, name) as (out, build):
        if build:
            run_lm_eval(out, data, model_args, *STOCK_SETTINGS, limit=STOCK_LIMIT, tasks=",".join(DEFAULT_EVAL_TASKS))
    (folder,) = [p.parent for p in out.rglob("results_*.json")]
    return folder


@pytest.fixture(scope="session")
def base_run(tmp_path_factory, small_qa, smollm2_gguf, fm5_cache) -> Path:
    """One real lm_eval run of the packaged SmolLM2 GGUF (the first 4 test questions of `small_qa`), shared by every
    test that reads a stock run of the base."""
    return _stock_run(tmp_path_factory, "base_run", small_qa, "pretrained={},gguf_file={}".format(*smollm2_gguf))


@pytest.fixture(scope="session")
def adapter_run(tmp_path_factory, small_qa, smollm2_gguf, random_adapter, fm5_cache) -> Path:
    """The same stock run with `random_adapter` over the base (peft=...)."""
    return _stock_run(tmp_path_factory, "adapter_run", small_qa,
                      "pretrained={},gguf_file={},peft={}".format(*smollm2_gguf, random_adapter))


@pytest.fixture(scope="session")
def random_adapter(request, tmp_path_factory) -> Path:
    """A LoRA adapter over the packaged base with non-zero weights (seeded), so it changes the model's outputs;
    saved once per test session."""
    with _once(tmp_path_factory, "adapter") as (folder, build):
        if build:
            import torch
            from peft import LoraConfig, get_peft_model

            model, _, _ = request.getfixturevalue("smollm2")
            torch.manual_seed(0)
            peft_model = get_peft_model(model, LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"],
                                                          init_lora_weights=False))
            peft_model.save_pretrained(folder / "random-lora")
            peft_model.unload()  # give the shared session model back unchanged
    return folder / "random-lora"


LLAMA3_TEMPLATE = (
    "{{- bos_token }}"
    "{%- if not date_string is defined %}{%- if strftime_now is defined %}"
    "{%- set date_string = strftime_now('%d %b %Y') %}{%- else %}{%- set date_string = '26 Jul 2024' %}{%- endif %}"
    "{%- endif %}"
    "{%- if messages[0]['role'] == 'system' %}{%- set system_message = messages[0]['content']|trim %}"
    "{%- set messages = messages[1:] %}{%- else %}{%- set system_message = '' %}{%- endif %}"
    "{{- '<|start_header_id|>system<|end_header_id|>\\n\\n' }}"
    "{{- 'Cutting Knowledge Date: December 2023\\n' }}{{- 'Today Date: ' + date_string + '\\n\\n' }}"
    "{{- system_message }}{{- '<|eot_id|>' }}"
    "{%- for message in messages %}{{- '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n'"
    " + message['content'] | trim + '<|eot_id|>' }}{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}{%- endif %}"
)
LLAMA3_SPECIALS = ["<|begin_of_text|>", "<|end_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"]


@pytest.fixture(scope="session")
def llama3_tokenizer(shared_rows):
    """A small byte-level BPE tokenizer shaped like Llama 3's: adds <|begin_of_text|> itself and carries a
    Llama-3.2-style chat template (which writes today's date into the system turn unless date_string is given)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=600, special_tokens=LLAMA3_SPECIALS,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator((r["passage"] + " " + r["answer"] for r in shared_rows[:200]), trainer)
    bos = tok.token_to_id("<|begin_of_text|>")
    tok.post_processor = processors.TemplateProcessing(single="<|begin_of_text|> $A",
                                                       special_tokens=[("<|begin_of_text|>", bos)])
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<|begin_of_text|>", eos_token="<|eot_id|>",
                                   pad_token="<|end_of_text|>")
    fast.chat_template = LLAMA3_TEMPLATE
    return fast

"""The lm-eval side: the task index loads, lm-eval's task contract holds with no model and no network, and the
hooks turn model outputs into the right per-question values."""

import math
import os
import subprocess
import sys
import zipfile
from itertools import islice

import pytest

from harness_ext import prompts, tasks_path

TASKS = ("fm5_qa_open", "fm5_qa_closed")
MC_TASKS = ("fm5_qa_mc_open", "fm5_qa_mc_closed")


@pytest.fixture(scope="module")
def task_manager(shared_qa):
    from lm_eval.tasks import TaskManager

    return TaskManager(include_path=str(tasks_path()), metadata={"fm5_data": str(shared_qa)})


@pytest.fixture(scope="module")
def loaded(task_manager):
    return {name: task_manager.load([name])["tasks"][name] for name in TASKS}


def test_index_lists_tasks_and_group(task_manager):
    for name in (*TASKS, "fm5_qa", *MC_TASKS, "fm5_qa_mc"):
        assert name in task_manager.all_tasks, f"{name} stopped loading"


def test_groups_load_their_tasks(task_manager):
    assert set(TASKS) == set(task_manager.load(["fm5_qa"])["tasks"])
    assert set(MC_TASKS) == set(task_manager.load(["fm5_qa_mc"])["tasks"])


def test_tasks_path_is_the_installed_task_folder_also_at_the_old_address():
    """`python -m harness_ext.cli` (the old address, kept for launchers) is still the fm5 command."""
    out = subprocess.check_output([sys.executable, "-m", "harness_ext.cli", "tasks-path"], text=True).strip()
    assert out == str(tasks_path()) and (tasks_path() / "fm5_qa" / "fm5_qa_open.yaml").is_file()


@pytest.mark.slow  # pip wheel + pip install (10 s here)
def test_wheel_ships_the_task_folder_and_the_commands(tmp_path):
    root = tasks_path().parent
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w",
                    str(tmp_path), str(root)], check=True, capture_output=True)
    (wheel,) = tmp_path.glob("fm5_eval-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for f in ("_fm5_qa_template_yaml", "fm5_qa_open.yaml", "fm5_qa_closed.yaml", "fm5_qa.yaml", "utils.py",
              "task.py", "README.md", "_fm5_qa_mc_template_yaml", "fm5_qa_mc_open.yaml", "fm5_qa_mc_closed.yaml",
              "fm5_qa_mc.yaml"):
        assert f"fm5_tasks/fm5_qa/{f}" in names
    assert "harness_ext/data/split.py" in names and "training/configs/smollm2_cpu.yaml" in names
    assert "reports/templates/report.html.j2" in names
    assert {f"fm5/commands/{c}.py" for c in ("train", "eval", "report", "gate", "data", "tasks", "demo")} <= names

    # an installed (not editable) copy finds its own task folder and lm-eval loads the tasks from it
    target = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(target), str(wheel)],
                   check=True, capture_output=True)
    code = ("import harness_ext, lm_eval.tasks as t; p = harness_ext.tasks_path(); print(p); "
            "m = t.TaskManager(include_path=str(p), include_defaults=False); "
            "print(sorted(n for n in m.all_tasks if n.startswith('fm5')))")
    env = {**os.environ, "PYTHONPATH": str(target)}
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True)
    path, names_line = out.stdout.strip().splitlines()[-2:]
    assert path == str(target / "fm5_tasks"), out.stderr[-2000:]
    assert names_line == "['fm5_doc_mc', 'fm5_qa', 'fm5_qa_closed', 'fm5_qa_mc', 'fm5_qa_mc_closed', 'fm5_qa_mc_open', 'fm5_qa_open']"
    out = subprocess.run([sys.executable, "-m", "fm5", "gate", "--help"], cwd=tmp_path, env=env, capture_output=True,
                         text=True)
    assert out.returncode == 0 and "--baseline" in out.stdout, out.stderr[-2000:]


@pytest.fixture(scope="module")
def our_tasks_only():
    """An index of this suite's task folder alone, with no metadata (indexing lm-eval's own task folders takes ~8 s
    and changes nothing here); each test loads its task from it afresh."""
    from lm_eval.tasks import TaskManager

    return TaskManager(include_path=str(tasks_path()), include_defaults=False)


# lm-eval's own task contract (the checks of `TestBaseTasks` in lm-eval's tests/test_tasks.py), with no model
# loaded and the data coming from FM5_DATA, as lm-eval's test runs it.
@pytest.fixture(params=TASKS + MC_TASKS)
def contract_task(request, our_tasks_only, shared_qa, monkeypatch):
    monkeypatch.setenv("FM5_DATA", str(shared_qa))
    return our_tasks_only.load([request.param])["tasks"][request.param]


LIMIT = 10


def _docs(task):
    return list(islice(task.test_docs() if task.has_test_docs() else task.validation_docs(), LIMIT))


def test_contract_download_and_splits(contract_task):
    contract_task.download()
    assert contract_task.dataset is not None
    for has, key in ((contract_task.has_training_docs, "training_split"),
                     (contract_task.has_validation_docs, "validation_split"),
                     (contract_task.has_test_docs, "test_split")):
        assert has() in (True, False)
        if has():
            assert contract_task._config[key] is not None
    assert contract_task.should_decontaminate() in (True, False)


def test_contract_docs_targets_and_requests(contract_task):
    docs = _docs(contract_task)
    texts = [contract_task.doc_to_text(d) for d in docs]
    delimiter = contract_task.config.target_delimiter
    for text in texts:
        assert isinstance(text, str)
        assert not (delimiter.isspace() and text and text[-1].isspace())
    targets = [contract_task.doc_to_target(d) for d in docs]
    if contract_task.config.output_type == "multiple_choice":  # an index into the choices, as lm-eval checks
        assert all(isinstance(t, int) and 0 <= t < len(contract_task.doc_to_choice(d)) for t, d in zip(targets, docs))
    else:
        assert all(isinstance(t, str) for t in targets)
    contract_task.build_all_requests(rank=1, limit=LIMIT, world_size=1)
    assert contract_task.instances is not None
    requests = [contract_task.construct_requests(doc=d, ctx=contract_task.doc_to_text(d)) for d in docs]
    assert len(requests) == LIMIT


def test_requests_generation_and_answer_loglikelihood(loaded, shared_rows):
    task = loaded["fm5_qa_open"]
    doc = task.test_docs()[0]
    ctx = task.fewshot_context(doc, 0)
    assert ctx == prompts.render_plain(prompts.build_messages(doc, "open"))
    gen, ll, ws = task.construct_requests(doc=doc, ctx=ctx, metadata=("fm5_qa_open", 0, 1))
    assert gen.request_type == "generate_until" and gen.arguments[1]["do_sample"] is False
    assert gen.arguments[1]["max_gen_toks"] == 128
    assert ll.arguments == (ctx, doc["answer"].strip())
    assert ws.arguments == (ctx.rstrip(), "\n")  # the trailing newline is scored alone and taken out again
    no_ws = task.construct_requests(doc=doc, ctx=ctx.rstrip(), metadata=("fm5_qa_open", 0, 1))
    assert len(no_ws) == 2


def test_chat_context_uses_the_chat_template_with_a_system_turn(loaded):
    task = loaded["fm5_qa_closed"]
    doc = task.test_docs()[0]
    seen = {}

    def chat_template(messages, add_generation_prompt):
        seen.update(messages=messages, add=add_generation_prompt)
        return "rendered"

    assert task.fewshot_context(doc, 0, apply_chat_template=True, chat_template=chat_template) == "rendered"
    assert seen["messages"] == prompts.build_messages(doc, "closed") and seen["add"] is True
    with pytest.raises(ValueError, match="zero-shot"):
        task.fewshot_context(doc, 2)


def test_process_results_counts_only_answer_tokens(loaded, smollm2):
    _, tokenizer, folder = smollm2
    task = loaded["fm5_qa_open"]
    task.config.metadata["fm5_tokenizer"] = str(folder)
    doc = task.test_docs()[0]
    task.construct_requests(doc=doc, ctx=task.fewshot_context(doc, 0), metadata=("fm5_qa_open", 0, 1))  # its prompt
    answer = doc["answer"].strip()
    n = len(tokenizer(answer, add_special_tokens=False)["input_ids"])
    out = task.process_results(doc, [f"  {answer} ", (-30.5, False), (-0.5, True)])
    assert out["perplexity"] == (30.0, n)
    assert out["exact_match"] == 1.0 and out["f1"] == 1.0
    assert out["bertscore_f1"] == (answer, answer)
    agg = task.aggregation()
    assert agg["perplexity"]([(30.0, 10), (10.0, 10)]) == pytest.approx(math.exp(2.0))
    assert task.higher_is_better()["perplexity"] is False


def test_mc_requests(task_manager):
    task = task_manager.load(["fm5_qa_mc_closed"])["tasks"]["fm5_qa_mc_closed"]
    doc = task.test_docs()[0]
    ctx = task.fewshot_context(doc, 0)
    assert ctx == prompts.render_plain(prompts.build_messages(doc, "closed"))
    reqs = task.construct_requests(doc=doc, ctx=ctx, metadata=("fm5_qa_mc_closed", 0, 1))
    k1 = len(doc["choices"])
    assert [r.request_type for r in reqs] == ["loglikelihood"] * (2 * k1 + 1)
    assert [r.idx for r in reqs] == list(range(2 * k1 + 1))
    assert [r.arguments for r in reqs[:k1]] == [(ctx, c) for c in doc["choices"]]
    assert reqs[k1].arguments == (ctx.rstrip(), "\n")
    neutral = prompts.render_plain(prompts.build_messages({"question": "", "passage": ""}, "closed"))
    assert [r.arguments for r in reqs[k1 + 1 :]] == [(neutral, c) for c in doc["choices"]]
    assert doc["question"] not in neutral


def test_backbone_is_recorded_in_task_metadata(loaded):
    for task in loaded.values():
        assert task.config.metadata["bertscore_backbone"] == "all-MiniLM-L6-v2:L6"
        assert len(task.config.metadata["fm5_data_sha256"]) == 64


def test_missing_data_location_is_a_clear_error(our_tasks_only, monkeypatch):
    from harness_ext.data import DataError

    monkeypatch.delenv("FM5_DATA", raising=False)
    with pytest.raises(DataError, match="fm5_data"):
        our_tasks_only.load(["fm5_qa_open"])

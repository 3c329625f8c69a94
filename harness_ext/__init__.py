"""fm5-eval: the Python behind the FM 5-0 lm-eval tasks (data, prompts, metrics, models, results, gate)."""

from pathlib import Path

__version__ = "0.1.0"

# the task names of tasks/fm5_qa, the one place they are spelled (closed-book first): the QA tasks, the
# multiple-choice question probe, the passage-continuation probe (was the text stored?)
QA_TASKS = ("fm5_qa_closed", "fm5_qa_open")
MC_TASKS = ("fm5_qa_mc_closed", "fm5_qa_mc_open")
DOC_TASK = "fm5_doc_mc"
DEFAULT_EVAL_TASKS = (*MC_TASKS, *QA_TASKS)  # what `fm5 eval` runs without --tasks
ALL_TASKS = (*DEFAULT_EVAL_TASKS, DOC_TASK)


def tasks_path() -> Path:
    """The task folder to pass to `lm_eval --include_path`: the repo's `tasks/`, installed as package `fm5_tasks`."""
    import importlib.util

    spec = importlib.util.find_spec("fm5_tasks")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("fm5 task folder not found; reinstall fm5-eval")
    return Path(next(iter(spec.submodule_search_locations)))

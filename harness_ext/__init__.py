"""fm5-eval: the Python behind the FM 5-0 lm-eval tasks (data, prompts, metrics, models, results, gate)."""

from pathlib import Path

__version__ = "0.1.0"

# the task names of tasks/fm5_qa (closed-book first): the QA tasks, the multiple-choice knowledge probe
QA_TASKS = ("fm5_qa_closed", "fm5_qa_open")
MC_TASKS = ("fm5_qa_mc_closed", "fm5_qa_mc_open")
ALL_TASKS = (*MC_TASKS, *QA_TASKS)


def tasks_path() -> Path:
    """The task folder to pass to `lm_eval --include_path`: the repo's `tasks/`, installed as package `fm5_tasks`."""
    import importlib.util

    spec = importlib.util.find_spec("fm5_tasks")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("fm5 task folder not found; reinstall fm5-eval")
    return Path(next(iter(spec.submodule_search_locations)))

"""fm5-eval: the Python behind the FM 5-0 lm-eval tasks (data, prompts, metrics, models, results, gate)."""

from pathlib import Path

__version__ = "0.1.0"


def tasks_path() -> Path:
    """The task folder to pass to `lm_eval --include_path`: the repo's `tasks/`, installed as package `fm5_tasks`."""
    import importlib.util

    spec = importlib.util.find_spec("fm5_tasks")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("fm5 task folder not found; reinstall fm5-eval")
    return Path(next(iter(spec.submodule_search_locations)))

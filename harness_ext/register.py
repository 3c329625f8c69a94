"""Register the fm5 task folder with the lm-eval of this environment (`fm5 tasks install | uninstall`:
fm5/commands/tasks.py).

lm-eval 0.4.13 finds tasks only in its own ``lm_eval/tasks/`` folder and in ``--include_path`` folders (task plugins
are an open upstream proposal, PR #4015), and its index (``Path.glob("**/*.yaml")``) does not enter a symlinked
directory. So ``install`` makes a real folder ``lm_eval/tasks/fm5_qa/`` whose files are symlinks to this package's
task files: stock ``lm_eval --tasks fm5_qa_open`` then works from any directory, and upgrading this package needs
no re-install (a new task *file* does: ``fm5 tasks`` says so). A marker file records what ``install`` made;
``uninstall`` removes exactly that (and the bytecode lm-eval's loader wrote beside the links), nothing else.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from harness_ext import __version__, tasks_path
from harness_ext.errors import UsageError

FAMILY = "fm5_qa"
MARKER = ".fm5-eval-install.json"
SKIP = {"__init__.py", "__pycache__"}


def lm_eval_tasks_dir() -> Path:
    """``lm_eval/tasks`` of the lm-eval importable here (found without importing lm-eval)."""
    spec = importlib.util.find_spec("lm_eval")
    if spec is None or not spec.submodule_search_locations:
        raise UsageError("lm-eval is not installed in this environment (pip install lm-eval)")
    folder = Path(next(iter(spec.submodule_search_locations))) / "tasks"
    if not folder.is_dir():
        raise UsageError(f"{folder}: lm-eval's task folder not found")
    return folder


def _sources() -> dict[str, Path]:
    src = tasks_path() / FAMILY
    return {p.name: p.resolve() for p in sorted(src.iterdir()) if p.is_file() and p.name not in SKIP}


@dataclass
class Status:
    target: Path
    installed: bool  # our marker is there
    foreign: bool  # a folder of that name that install did not make
    current: bool  # every package file is linked, and nothing else

    def describe(self) -> str:
        src = tasks_path() / FAMILY
        if self.foreign:
            return f"{self.target} exists and was not made by `fm5 tasks install`; use --include_path {src.parent}"
        if not self.installed:
            return (f"not registered with lm-eval ({self.target.parent}); run `fm5 tasks install`, or pass "
                    f"--include_path {src.parent}")
        state = "up to date" if self.current else "out of date: run `fm5 tasks install` again"
        return f"registered with lm-eval: {self.target} -> {src} ({state})"


def _marker(target: Path) -> dict | None:
    try:
        doc = json.loads((target / MARKER).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return doc if isinstance(doc, dict) and doc.get("made_by") == "fm5-eval" else None


def status(target_root: Path | None = None) -> Status:
    target = (target_root or lm_eval_tasks_dir()) / FAMILY
    if not target.exists() and not target.is_symlink():
        return Status(target, False, False, False)
    marker = _marker(target) if target.is_dir() and not target.is_symlink() else None
    if marker is None:
        return Status(target, False, True, False)
    sources = _sources()
    current = set(marker.get("files", [])) == set(sources) and all(
        (target / name).is_symlink() and (target / name).resolve() == path for name, path in sources.items())
    return Status(target, True, False, current)


def install(target_root: Path | None = None) -> str:
    st = status(target_root)
    if st.foreign:
        raise UsageError(st.describe())
    if st.installed and st.current:
        return f"already {st.describe()}"
    root = st.target.parent
    if not os.access(root, os.W_OK):
        raise UsageError(f"{root}: lm-eval's task folder is not writable; use --include_path {tasks_path()}")
    if st.installed:  # ours but stale (the package moved or gained files): redo it
        _remove(st.target)
    sources = _sources()
    tmp = root / f".{FAMILY}.fm5-tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        tmp.mkdir()
        for name, path in sources.items():
            (tmp / name).symlink_to(path)
        (tmp / MARKER).write_text(json.dumps({"made_by": "fm5-eval", "version": __version__,
                                              "source": str(tasks_path() / FAMILY), "files": sorted(sources)},
                                             indent=1) + "\n", encoding="utf-8")
        os.rename(tmp, st.target)  # all or nothing: lm-eval never sees a half-made folder
    except OSError as err:
        shutil.rmtree(tmp, ignore_errors=True)
        raise UsageError(f"{st.target}: cannot register the tasks ({err.strerror or err})") from None
    return status(target_root).describe()


def _remove(target: Path) -> None:
    """Delete what install made: the links, the marker, and the bytecode lm-eval's loader wrote for the links."""
    marker = _marker(target) or {}
    for name in marker.get("files", []):
        if (target / name).is_symlink():
            (target / name).unlink()
    cache = target / "__pycache__"
    if cache.is_dir():
        stems = {Path(n).stem for n in marker.get("files", []) if n.endswith(".py")}
        for f in cache.iterdir():
            if f.suffix == ".pyc" and f.name.split(".")[0] in stems:
                f.unlink()
        if not any(cache.iterdir()):
            cache.rmdir()
    (target / MARKER).unlink(missing_ok=True)
    if not any(target.iterdir()):
        target.rmdir()


def uninstall(target_root: Path | None = None) -> str:
    st = status(target_root)
    if st.foreign:
        raise UsageError(f"{st.target} was not made by `fm5 tasks install`; left as it is")
    if not st.installed:
        return f"nothing to remove: {st.describe()}"
    _remove(st.target)
    left = " (other files in it were kept)" if st.target.exists() else ""
    return f"removed {st.target}{left}"

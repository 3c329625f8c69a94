"""`fm5 tasks install / uninstall`: stock `lm_eval --tasks fm5_qa_closed` without --include_path, from outside the
repo, in a throwaway lm-eval (a shadow of the installed package whose task folder is a real, temporary folder)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import FM5
from harness_ext import register, tasks_path

pytestmark = pytest.mark.slow  # stock lm_eval in a shadow install

REAL_LM_EVAL = register.lm_eval_tasks_dir().parent


@pytest.fixture
def shadow(tmp_path):
    """site/lm_eval: the real package's entries linked in, except `tasks`, a real folder of links (lm-eval's index
    does not enter linked folders, so only what install makes is indexed: quick to load)."""
    site = tmp_path / "site"
    pkg = site / "lm_eval"
    (pkg / "tasks").mkdir(parents=True)
    for entry in REAL_LM_EVAL.iterdir():
        if entry.name not in ("tasks", "__pycache__"):
            (pkg / entry.name).symlink_to(entry)
    for entry in (REAL_LM_EVAL / "tasks").iterdir():
        if entry.name not in ("fm5_qa", "__pycache__"):
            (pkg / "tasks" / entry.name).symlink_to(entry)
    return site


def _listing(folder: Path) -> dict:
    return {str(p.relative_to(folder)): (os.readlink(p) if p.is_symlink() else p.read_bytes() if p.is_file() else "dir")
            for p in sorted(folder.rglob("*"))}


def fm5_tasks(site, *args):
    env = {**os.environ, "PYTHONPATH": str(site)}
    return subprocess.run([*FM5, "tasks", *args], capture_output=True, text=True,
                          env=env, cwd=site.parent)


def test_install_run_reinstall_uninstall(shadow, tmp_path, small_qa, smollm2_gguf, fm5_cache):
    tasks_dir = shadow / "lm_eval" / "tasks"
    before = _listing(tasks_dir)
    assert "not registered" in fm5_tasks(shadow).stdout

    first = fm5_tasks(shadow, "install")
    assert first.returncode == 0 and "registered with lm-eval" in first.stdout, first.stderr
    target = tasks_dir / "fm5_qa"
    assert target.is_dir() and not target.is_symlink()
    for name in ("fm5_qa_closed.yaml", "fm5_qa_mc_open.yaml", "_fm5_qa_template_yaml", "task.py", "utils.py"):
        assert (target / name).is_symlink() and (target / name).resolve() == (tasks_path() / "fm5_qa" / name).resolve()
    installed = _listing(tasks_dir)
    second = fm5_tasks(shadow, "install")
    assert second.returncode == 0 and second.stdout.startswith("already registered")
    assert _listing(tasks_dir) == installed  # a no-op
    assert "(up to date)" in fm5_tasks(shadow).stdout

    # the stock command, from a folder outside the repo, without --include_path
    pretrained, gguf = smollm2_gguf
    run_dir = tmp_path / "elsewhere"
    run_dir.mkdir()
    proc = subprocess.run(
        [sys.executable, "-m", "lm_eval", "--tasks", "fm5_qa_closed", "--model", "hf", "--model_args",
         f"pretrained={pretrained},gguf_file={gguf}", "--limit", "1", "--device", "cpu", "--gen_kwargs",
         "max_gen_toks=4", "--metadata", json.dumps({"fm5_data": str(small_qa)}), "--output_path", "out"],
        capture_output=True, text=True, cwd=run_dir, env={**os.environ, "PYTHONPATH": str(shadow)}, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    (results,) = run_dir.glob("out/*/results_*.json")
    assert "perplexity,none" in json.loads(results.read_text())["results"]["fm5_qa_closed"]

    gone = fm5_tasks(shadow, "uninstall")
    assert gone.returncode == 0 and gone.stdout.startswith("removed")
    assert _listing(tasks_dir) == before  # restored exactly
    assert fm5_tasks(shadow, "uninstall").stdout.startswith("nothing to remove")


def test_a_foreign_fm5_qa_folder_is_left_alone(shadow):
    foreign = shadow / "lm_eval" / "tasks" / "fm5_qa"
    foreign.mkdir()
    (foreign / "fm5_qa_open.yaml").write_text("task: fm5_qa_open\n")
    before = _listing(foreign)
    for action in ("install", "uninstall"):
        proc = fm5_tasks(shadow, action)
        assert proc.returncode == 2 and "not made by `fm5 tasks install`" in proc.stderr
        assert len(proc.stderr.strip().splitlines()) == 1 and "Traceback" not in proc.stderr
        assert _listing(foreign) == before


def test_a_read_only_task_folder_is_refused(tmp_path, monkeypatch):
    """Permissions do not bind root (CI runs as root), so the refusal is checked with os.access answering no."""
    from fm5.cli import main
    from harness_ext.errors import UsageError

    root = tmp_path / "tasks"
    root.mkdir()
    monkeypatch.setattr(register.os, "access", lambda path, mode: False)
    with pytest.raises(UsageError, match="not writable; use --include_path"):
        register.install(root)
    assert list(root.iterdir()) == []
    monkeypatch.setattr(register, "lm_eval_tasks_dir", lambda: root)
    assert main(["tasks", "install"]) == 2


def test_stale_links_are_refreshed(tmp_path):
    root = tmp_path / "tasks"
    root.mkdir()
    register.install(root)
    (root / "fm5_qa" / "utils.py").unlink()
    assert not register.status(root).current
    assert "(up to date)" in register.install(root)
    assert (root / "fm5_qa" / "utils.py").is_symlink()

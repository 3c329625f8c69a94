"""CI gating as users copy it: examples/github-workflow.yml and the composite action (action.yml) executed step by
step (tests/workflow_runner.py) on a tiny QA file with the packaged model, the pull-request comment posted through a
fake `gh` that keeps the comments, so "created once, then updated in place" is checked, not assumed."""

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from conftest import REPO, fm5_in_process
from workflow_runner import Runner, WorkflowError

WORKFLOW = REPO / "examples" / "github-workflow.yml"
ACTION = REPO / "action.yml"
REPOSITORY = "octo/adapters"

FAKE_GH = r'''#!/usr/bin/env python3
"""A fake `gh api` over a JSON file of one pull request's comments; every call is recorded."""
import json, os, subprocess, sys
state_path = os.environ["FAKE_GH_STATE"]
state = json.load(open(state_path)) if os.path.exists(state_path) else {"calls": [], "comments": []}
args = sys.argv[1:]
state["calls"].append({"argv": args, "token": bool(os.environ.get("GH_TOKEN"))})
def save():
    json.dump(state, open(state_path, "w"), indent=1)
if not os.environ.get("GH_TOKEN"):
    save(); sys.exit("gh: To use GitHub CLI in a GitHub Actions workflow, set the GH_TOKEN environment variable.")
assert args[0] == "api", args
method, path, jq, body = "GET", None, None, None
i = 1
while i < len(args):
    a = args[i]
    if a == "-X": method = args[i + 1]; i += 2; continue
    if a == "--jq": jq = args[i + 1]; i += 2; continue
    if a == "-F":
        key, value = args[i + 1].split("=", 1)
        assert key == "body" and value.startswith("@"), args
        body = open(value[1:], encoding="utf-8").read(); i += 2; continue
    if a == "--paginate": i += 1; continue
    assert path is None and not a.startswith("-"), args
    path = a; i += 1
repo = os.environ["GITHUB_REPOSITORY"]
if method == "GET" and path == f"repos/{repo}/issues/7/comments":
    out = json.dumps([{"id": c["id"], "body": c["body"], "user": {"login": "github-actions[bot]"}}
                      for c in state["comments"]])
    if jq:
        out = subprocess.run(["jq", "-r", jq], input=out, capture_output=True, text=True, check=True).stdout
    save(); print(out, end="" if out.endswith("\n") else "\n"); sys.exit(0)
if method == "POST" and path == f"repos/{repo}/issues/7/comments":
    comment = {"id": 1000 + len(state["comments"]), "body": body}
    state["comments"].append(comment); save(); print(json.dumps(comment)); sys.exit(0)
if method == "PATCH" and path.startswith(f"repos/{repo}/issues/comments/"):
    cid = int(path.rsplit("/", 1)[1])
    comment = next(c for c in state["comments"] if c["id"] == cid)
    comment["body"] = body; save(); print(json.dumps(comment)); sys.exit(0)
save(); sys.exit(f"gh: unexpected call {args}")
'''


def _fake_gh(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    gh = folder / "gh"
    gh.write_text(FAKE_GH.replace("#!/usr/bin/env python3", f"#!{sys.executable}", 1))
    gh.chmod(0o755)
    return folder


def _runner(workspace: Path, tmp: Path, run_id: str, action_dir: Path = REPO, fork: bool = False,
            token: str = "fake-token") -> Runner:
    bin_dir = _fake_gh(tmp / "bin")
    env = {"PATH": f"{bin_dir}{os.pathsep}{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
           "HOME": os.environ.get("HOME", str(tmp)), "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false",
           "FM5_CACHE": os.environ["FM5_CACHE"], "FAKE_GH_STATE": str(tmp / "gh.json"),
           "GITHUB_REPOSITORY": REPOSITORY, "GITHUB_EVENT_NAME": "pull_request", "GITHUB_RUN_ID": run_id,
           "GITHUB_SERVER_URL": "https://github.com", "GITHUB_API_URL": "https://api.github.com"}
    head = "someone/adapters-fork" if fork else REPOSITORY
    event = {"pull_request": {"number": 7, "head": {"repo": {"full_name": head}}},
             "repository": {"full_name": REPOSITORY}}
    return Runner(workspace, action_dir, "fm5-eval", env, event, token=token)


def _gh_state(tmp: Path) -> dict:
    path = tmp / "gh.json"
    return json.loads(path.read_text()) if path.exists() else {"calls": [], "comments": []}


@pytest.fixture(scope="module")
def workspace(tmp_path_factory, small_qa, smollm2_gguf, random_adapter):
    """A user's repository as the example workflow expects it: the candidate adapter, the QA file, a gate YAML and
    the committed baseline (the base model's `fm5 eval` output folder, made here the way the workflow's header
    says)."""
    ws = tmp_path_factory.mktemp("workflow") / "repo"
    (ws / "data").mkdir(parents=True)
    shutil.copy(small_qa, ws / "data" / "qa_pairs.jsonl")
    shutil.copytree(random_adapter, ws / "adapters" / "candidate")
    (ws / "fm5-gate.yaml").write_text(
        "tasks: [fm5_qa_mc_closed]\n"
        "knowledge: {task: fm5_qa_mc_closed, metric: margin, tolerance: {absolute: 0.1}}\n")
    pretrained, gguf = smollm2_gguf
    evals = ws.parent / "baseline-eval"
    proc = fm5_in_process("eval", "--model_args", f"pretrained={pretrained},gguf_file={gguf}", "--tasks",
                          "fm5_qa_mc_closed", "--data", str(ws / "data" / "qa_pairs.jsonl"), "--apply_chat_template",
                          "--output_path", str(evals))
    assert proc.returncode == 0, proc.stderr[-3000:]
    (model,) = [p.parent for p in evals.glob("*/results_*.json")]
    shutil.move(model, ws / "baselines" / "base")
    return ws


@pytest.mark.slow
def test_the_example_workflow_gates_reports_and_keeps_one_comment(workspace, tmp_path):
    job = _runner(workspace, tmp_path, "101").run_job(WORKFLOW)
    outcomes = {s.name: s.outcome for s in job.steps}
    assert outcomes == {"actions/checkout@v4": "replaced", "actions/setup-python@v5": "replaced",
                        "CPU build of torch (a few hundred MB instead of several GB)": "replaced",
                        "fm5 gate": "success" if job.code == 0 else "failure", "Decision": "success"}, job.log
    fm5_step = next(s for s in job.steps if s.name == "fm5 gate")
    decision = fm5_step.outputs["decision"]
    assert decision in ("pass", "regression"), job.log
    assert job.code == {"pass": 0, "regression": 1}[decision]  # the job's status is the gate's
    out = workspace / "fm5-gate"
    assert fm5_step.outputs["report"] == "fm5-gate/report.html" and (out / "report.html").is_file()
    assert {p.name for p in out.iterdir()} >= {"evals", "gate-1.json", "gate-1.xml", "report.html", "comment.md"}
    assert job.uploads == [{"name": "fm5-gate", "path": "fm5-gate", "if-no-files-found": "ignore"}]
    assert job.summary.count("### fm5 gate: ") == 1 and "| fm5_qa_mc_closed | margin |" in job.summary
    gate = json.loads((out / "gate-1.json").read_text())
    assert gate["verdict"] == {"pass": "pass", "regression": "fail"}[decision] and gate["candidate_label"]
    assert f"fm5 decided '{decision}'" in job.log

    state = _gh_state(tmp_path)
    assert [c["argv"][:3] for c in state["calls"]] == [["api", f"repos/{REPOSITORY}/issues/7/comments", "--paginate"],
                                                      ["api", "-X", "POST"]]
    (comment,) = state["comments"]
    assert comment["body"] == (out / "comment.md").read_text()
    assert comment["body"].startswith("<!-- fm5-gate -->\n### fm5 gate: ")
    assert "actions/runs/101" in comment["body"] and "**Verdict**" in comment["body"]
    if os.environ.get("FM5_KEEP_COMMENT"):
        shutil.copy(out / "comment.md", os.environ["FM5_KEEP_COMMENT"])

    # a later push: the same comment, updated in place (fm5 eval keeps the evaluated folders, so this run is quick)
    job2 = _runner(workspace, tmp_path, "102").run_job(WORKFLOW)
    assert job2.code == job.code, job2.log
    state = _gh_state(tmp_path)
    assert [c["argv"][:3] for c in state["calls"][2:]] == [
        ["api", f"repos/{REPOSITORY}/issues/7/comments", "--paginate"], ["api", "-X", "PATCH"]]
    assert state["calls"][3]["argv"][3] == f"repos/{REPOSITORY}/issues/comments/1000"
    (comment,) = state["comments"]
    assert "actions/runs/102" in comment["body"] and "actions/runs/101" not in comment["body"]

    # a fork's pull request, and a job without a token: no comment, one line, the gate's status unchanged
    for runner, line in ((_runner(workspace, tmp_path, "103", fork=True), "pull request from a fork"),
                         (_runner(workspace, tmp_path, "104", token=""), "no github_token: comment skipped")):
        calls = len(_gh_state(tmp_path)["calls"])
        job3 = runner.run_job(WORKFLOW)
        assert job3.code == job.code and f"fm5: {line}" in job3.log, job3.log
        assert len(_gh_state(tmp_path)["calls"]) == calls and len(_gh_state(tmp_path)["comments"]) == 1


def _mutant(tmp_path: Path, source: Path, old: str, new: str) -> Path:
    text = source.read_text()
    assert old in text, old
    target = tmp_path / "mutant" / source.name
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(text.replace(old, new))
    return target


def test_a_renamed_flag_in_the_action_fails_the_job(tmp_path):
    """What the workflow test catches: `--output_path` spelled `--output-path` in action.yml stops the job at
    `fm5 eval` with exit 2 (no model is loaded: the arguments are checked first), and nothing is commented."""
    ws = tmp_path / "repo"
    ws.mkdir()
    action_dir = _mutant(tmp_path, ACTION, '--output_path "$OUT/evals"', '--output-path "$OUT/evals"').parent
    job = _runner(ws, tmp_path, "201", action_dir=action_dir).run_job(WORKFLOW)
    step = next(s for s in job.steps if s.name == "fm5 gate")
    assert step.outcome == "failure" and job.code == 2, job.log
    assert "unrecognized arguments: --output-path" in job.log or "--output_path" in job.log
    assert _gh_state(tmp_path)["calls"] == []


def test_a_wrong_output_or_input_name_in_the_workflow_is_an_error(tmp_path):
    ws = tmp_path / "repo"
    ws.mkdir()
    action_dir = _mutant(tmp_path, ACTION, '--output_path "$OUT/evals"', '--output-path "$OUT/evals"').parent
    typo = _mutant(tmp_path, WORKFLOW, "steps.fm5.outputs.decision", "steps.fm5.outputs.decison")
    with pytest.raises(WorkflowError, match="decison"):
        _runner(ws, tmp_path, "202", action_dir=action_dir).run_job(typo)
    wrong_input = _mutant(tmp_path, WORKFLOW, "gate_config: fm5-gate.yaml", "gate-config: fm5-gate.yaml")
    with pytest.raises(WorkflowError, match="unexpected input"):
        _runner(ws, tmp_path, "203", action_dir=action_dir).run_job(wrong_input)


def _flags(text: str) -> set[str]:
    return set(re.findall(r"(?<![\w-])--[a-z][a-z_-]*[a-z]", text))


def test_every_flag_the_yaml_prose_names_exists():
    """The old example told the reader to "drop --device cpu below" where no such flag stood: every flag named in
    the workflow's comments and the action's descriptions and defaults is a flag of the fm5 command it belongs to
    (fm5 eval's lm-eval pass-through flags included)."""
    help_text = ""
    for command in ("eval", "gate", "report"):
        proc = subprocess.run([sys.executable, "-m", "fm5", command, "--help"], capture_output=True, text=True)
        help_text += proc.stdout
    known = _flags(help_text)
    comments = "\n".join(line.split("#", 1)[1] for line in WORKFLOW.read_text().splitlines() if "#" in line)
    action = yaml.safe_load(ACTION.read_text())
    prose = comments + "\n" + "\n".join(f"{spec.get('description', '')} {spec.get('default', '')}"
                                        for spec in action["inputs"].values())
    named = _flags(prose)
    assert named and named <= known, sorted(named - known)


def test_no_expression_is_spliced_into_a_script():
    """Values reach scripts through env: only (no ${{ }} in a run: block: a label or a branch name cannot inject
    shell)."""
    action = yaml.safe_load(ACTION.read_text())
    workflow = yaml.safe_load(WORKFLOW.read_text())
    steps = action["runs"]["steps"] + [s for job in workflow["jobs"].values() for s in job["steps"]]
    assert all("${{" not in s.get("run", "") for s in steps)
    assert all(s.get("shell") == "bash" for s in action["runs"]["steps"] if "run" in s)

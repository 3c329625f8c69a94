"""Just enough of a GitHub Actions runner to execute a workflow job and the composite actions it uses on this
machine: every `run:` step in bash (`bash --noprofile --norc -eo pipefail`, as `shell: bash` does) with the files
and variables a runner provides (GITHUB_OUTPUT per step, GITHUB_STEP_SUMMARY, GITHUB_EVENT_PATH, ...), `if:`
conditions, `env:` / `with:` expressions, step outputs and outcomes, a composite action's inputs and outputs.

Replaced, not run: `actions/checkout`, `actions/setup-python` and `actions/upload-artifact` (the workspace, the
Python and the files are already on disk; an upload's `path` is recorded and, unless `if-no-files-found: ignore`,
checked to exist) and every step that
runs `pip install` (the network install; the test's environment has the packages). Stricter than GitHub where a
typo would otherwise pass silently: an unknown input, context, step id or step output is an error, and so is a
`${{ }}` inside a script (values reach scripts through `env:` only)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import yaml

REPLACED = ("actions/checkout@", "actions/setup-python@", "actions/upload-artifact@")
NETWORK_INSTALL = re.compile(r"\bpip install\b")
_EXPR = re.compile(r"\$\{\{\s*(.*?)\s*\}\}", re.S)
_TOKEN = re.compile(r"\s+|('(?:[^']|'')*')|(&&|\|\||==|!=|!|\(|\))|([A-Za-z_][\w.\-]*\(\))|([A-Za-z_][\w.\-]*)|(\d+)")


class WorkflowError(Exception):
    """The workflow or action is wrong in a way GitHub would reject or silently mishandle."""


@dataclass
class Step:
    name: str
    outcome: str  # success | failure | skipped | replaced
    code: int = 0
    outputs: dict = field(default_factory=dict)
    declared: tuple | None = None  # a composite action's declared output names (known whatever the outcome)


@dataclass
class Job:
    steps: list[Step]
    log: str
    uploads: list[dict]
    summary: str  # what the steps wrote to GITHUB_STEP_SUMMARY

    @property
    def code(self) -> int:
        """The exit status of the first failed step (0 when the job succeeded)."""
        return next((s.code for s in self.steps if s.outcome == "failure"), 0)


class Runner:
    def __init__(self, workspace: Path, action_dir: Path, action_repo: str, env: dict, event: dict,
                 token: str = "fake-token"):
        self.workspace, self.action_dir, self.action_repo = workspace, action_dir, action_repo
        self.tmp = Path(tempfile.mkdtemp(prefix="fm5-runner-"))
        event_path = self.tmp / "event.json"
        event_path.write_text(json.dumps(event))
        self.summary = self.tmp / "step_summary.md"
        self.summary.touch()
        self.env = {**env, "CI": "true", "GITHUB_ACTIONS": "true", "GITHUB_EVENT_PATH": str(event_path),
                    "GITHUB_STEP_SUMMARY": str(self.summary), "GITHUB_WORKSPACE": str(workspace),
                    "RUNNER_TEMP": str(self.tmp)}
        self.github = {"token": token, "workspace": str(workspace), "repository": env["GITHUB_REPOSITORY"],
                       "event_name": env["GITHUB_EVENT_NAME"], "run_id": env["GITHUB_RUN_ID"],
                       "server_url": env["GITHUB_SERVER_URL"]}
        self.log: list[str] = []
        self.uploads: list[dict] = []

    # ---------------------------------------------------------------------------------------------- expressions

    def _lookup(self, path: str, ctx: dict):
        head, _, rest = path.partition(".")
        if head == "steps":
            sid, _, what = rest.partition(".")
            steps = ctx["steps"]
            if sid not in steps:
                raise WorkflowError(f"steps.{sid}: no earlier step has id {sid!r}")
            step = steps[sid]
            if what in ("outcome", "conclusion"):
                return step.outcome
            name = what.removeprefix("outputs.")
            known = step.declared if step.declared is not None else \
                step.outputs if step.outcome == "success" else None
            if not what.startswith("outputs.") or (known is not None and name not in known):
                raise WorkflowError(f"steps.{rest}: step {sid!r} has no such output (it set {sorted(step.outputs)})")
            return step.outputs.get(name, "")
        if head == "inputs":
            if rest not in ctx["inputs"]:
                raise WorkflowError(f"inputs.{rest}: not an input of this action ({sorted(ctx['inputs'])})")
            return ctx["inputs"][rest]
        if head == "github":
            if rest == "action_path" and "action_path" in ctx:
                return ctx["action_path"]
            if rest not in self.github:
                raise WorkflowError(f"github.{rest}: not provided by this runner")
            return self.github[rest]
        if head == "env":
            return ctx["env"].get(rest, "")
        raise WorkflowError(f"{path}: unknown context")

    def evaluate(self, expr: str, ctx: dict):
        out, pos = [], 0
        for m in _TOKEN.finditer(expr):
            if m.start() != pos:
                raise WorkflowError(f"cannot parse expression {expr!r}")
            pos = m.end()
            literal, op, call, name, number = m.groups()
            if literal:
                out.append(repr(literal[1:-1].replace("''", "'")))
            elif op:
                out.append({"&&": " and ", "||": " or ", "!": " not "}.get(op, f" {op} "))
            elif call:
                if call not in ("always()", "success()", "failure()"):
                    raise WorkflowError(f"{call}: function not supported here")
                out.append({"always()": "True", "success()": repr(ctx["ok"]), "failure()": repr(not ctx["ok"])}[call])
            elif name:
                out.append({"true": "True", "false": "False"}.get(name) or repr(self._lookup(name, ctx)))
            elif number:
                out.append(number)
        if pos != len(expr):
            raise WorkflowError(f"cannot parse expression {expr!r}")
        return eval("".join(out), {"__builtins__": {}})  # only literals, and/or/not and comparisons remain

    def substitute(self, value, ctx: dict) -> str:
        if not isinstance(value, str):
            return "" if value is None else str(value).lower() if isinstance(value, bool) else str(value)
        return _EXPR.sub(lambda m: str(self.evaluate(m.group(1), ctx)), value)

    def condition(self, step: dict, ctx: dict) -> bool:
        cond = step.get("if")
        if cond is None:
            return ctx["ok"]
        cond = str(cond).strip()
        m = _EXPR.fullmatch(cond)
        return bool(self.evaluate(m.group(1) if m else cond, ctx))

    # ---------------------------------------------------------------------------------------------- steps

    def _bash(self, name: str, script: str, env: dict, action_path: str | None) -> Step:
        if "${{" in script:
            raise WorkflowError(f"step {name!r}: ${{{{ }}}} inside a script; pass the value through env:")
        out_file = self.tmp / f"output-{len(self.log)}"
        out_file.write_text("")
        script_file = self.tmp / f"step-{len(self.log)}.sh"
        script_file.write_text(script)
        full_env = {**self.env, **env, "GITHUB_OUTPUT": str(out_file)}
        if action_path:
            full_env["GITHUB_ACTION_PATH"] = action_path
        proc = subprocess.run(["bash", "--noprofile", "--norc", "-eo", "pipefail", str(script_file)],
                              cwd=self.workspace, env=full_env, capture_output=True, text=True)
        self.log.append(f"## {name} (exit {proc.returncode})\n{proc.stdout}{proc.stderr}")
        outputs, lines = {}, iter(out_file.read_text().splitlines())
        for line in lines:
            if "<<" in line and ("=" not in line or line.index("<<") < line.index("=")):
                key, delim = line.split("<<", 1)
                outputs[key] = "\n".join(iter(lambda: next(lines), delim))
            elif "=" in line:
                key, value = line.split("=", 1)
                outputs[key] = value
        return Step(name, "success" if proc.returncode == 0 else "failure", proc.returncode, outputs)

    def _step(self, step: dict, ctx: dict, composite: bool) -> Step:
        name = step.get("name") or step.get("uses") or step.get("run", "").splitlines()[0]
        if not self.condition(step, ctx):
            return Step(name, "skipped")
        env = {**ctx["env"], **{k: self.substitute(v, ctx) for k, v in (step.get("env") or {}).items()}}
        uses = step.get("uses")
        if uses and uses.startswith(REPLACED):
            if uses.startswith("actions/upload-artifact@"):
                upload = {k: self.substitute(v, ctx) for k, v in (step.get("with") or {}).items()}
                if not (self.workspace / upload["path"]).exists() and upload.get("if-no-files-found") != "ignore":
                    raise WorkflowError(f"upload {upload['name']!r}: {upload['path']} does not exist")
                self.uploads.append(upload)
            return Step(name, "replaced")
        if uses:
            repo = uses.split("@")[0]
            if not (uses.startswith("./") or repo.split("/")[-1] == self.action_repo):
                raise WorkflowError(f"{uses}: no such action here")
            return self._composite(name, step, ctx)
        if composite and step.get("shell") != "bash":
            raise WorkflowError(f"step {name!r}: a composite action's run step needs shell: bash")
        if NETWORK_INSTALL.search(step["run"]):
            return Step(name, "replaced")
        return self._bash(name, step["run"], env, ctx.get("action_path"))

    def _composite(self, name: str, step: dict, caller: dict) -> Step:
        action = yaml.safe_load((self.action_dir / "action.yml").read_text())
        if action["runs"]["using"] != "composite":
            raise WorkflowError("action.yml: not a composite action")
        declared = action.get("inputs") or {}
        given = {k: self.substitute(v, caller) for k, v in (step.get("with") or {}).items()}
        unknown = sorted(set(given) - set(declared))
        if unknown:
            raise WorkflowError(f"{step['uses']}: unexpected input(s) {unknown}; the action takes {sorted(declared)}")
        ctx = {"ok": True, "steps": {}, "env": dict(caller["env"]), "action_path": str(self.action_dir)}
        inputs = {}
        for key, spec in declared.items():
            if key in given:
                inputs[key] = given[key]
            elif spec.get("required"):
                raise WorkflowError(f"{step['uses']}: required input {key!r} not given")
            else:
                inputs[key] = self.substitute(spec.get("default", ""), {**ctx, "inputs": {}})
        ctx["inputs"] = inputs
        code = 0
        for inner in action["runs"]["steps"]:
            result = self._step(inner, ctx, composite=True)
            if "id" in inner:
                ctx["steps"][inner["id"]] = result
            if result.outcome == "failure":
                ctx["ok"], code = False, code or result.code
        outputs = {k: self.substitute(v["value"], ctx) for k, v in (action.get("outputs") or {}).items()}
        return Step(name, "success" if ctx["ok"] else "failure", code, outputs, tuple(outputs))

    def run_job(self, workflow: Path, job: str | None = None) -> Job:
        doc = yaml.safe_load(workflow.read_text())
        spec = doc["jobs"][job or next(iter(doc["jobs"]))]
        ctx = {"ok": True, "steps": {}, "env": {**(doc.get("env") or {}), **(spec.get("env") or {})}, "inputs": {}}
        done = []
        for raw in spec["steps"]:
            result = self._step(raw, ctx, composite=False)
            if "id" in raw:
                ctx["steps"][raw["id"]] = result
            if result.outcome == "failure":
                ctx["ok"] = False
            done.append(result)
        return Job(done, "\n".join(self.log), self.uploads, self.summary.read_text())

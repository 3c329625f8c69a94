"""Every command line the README shows still works: each `fm5 ...`, `lm_eval ...`, `torchrun ... -m fm5 ...` and
`python -m ...` line (code blocks and inline code) names a command that exists and only flags that command takes;
the ones that are cheap to run are run as written (placeholders filled in)."""

from __future__ import annotations

import re
import shlex
from dataclasses import fields

import pytest

from conftest import REPO

README = (REPO / "README.md").read_text()
PROGRAMS = ("fm5 ", "lm_eval ", "torchrun ", "accelerate launch ", "python -m ")


def readme_commands() -> list[str]:
    """Command lines of the README: code-block lines (continuations joined) and inline code, that start with one of
    PROGRAMS; output quoted in the text (`fm5 demo finished in 384s`, `fm5 eval: error: ...`) is not a command."""
    lines, blocks = [], re.findall(r"```[a-z]*\n(.*?)```", README, flags=re.S)
    for block in blocks:
        joined = re.sub(r"\\\n\s*", " ", block)
        lines += [line.split("  #")[0].strip() for line in joined.splitlines()]
    lines += re.findall(r"`([^`\n]+)`", re.sub(r"```.*?```", "", README, flags=re.S))
    out = []
    for line in lines:
        if line.startswith(PROGRAMS) and not re.match(r"fm5 \w+:|fm5 demo finished", line):
            out.append(line)
    return sorted(set(out))


def _tokens(line: str) -> list[str]:
    line = re.sub(r"\[(--?[\w-]+)[^\]]*\]", r"\1", line.replace("\\|", " "))  # "[--key value ...]" -> "--key"
    line = line.replace("[", " ").replace("]", " ")
    try:
        return shlex.split(line)
    except ValueError:  # an unbalanced quote in a shortened example
        return line.split()


def _flags(tokens: list[str]) -> set[str]:
    return {t.split("=")[0] for t in tokens if t.startswith("--") and t != "--key" and len(t) > 2}


def _fm5_flags(sub: str) -> set[str]:
    from fm5.cli import build_parser

    parser = build_parser()
    (subparsers,) = [a for a in parser._actions if a.choices and sub in (a.choices or {})]
    flags = {s for a in subparsers.choices[sub]._actions for s in a.option_strings}
    if sub == "eval":  # lm-eval's options that fm5 eval passes through
        from fm5.commands.eval import pass_through_parser

        flags |= {s for a in pass_through_parser()._actions for s in a.option_strings}
    if sub == "train":  # any ScriptArguments or SFTConfig field, as --key value
        from trl import SFTConfig

        from training.config import ScriptArguments

        flags |= {f"--{f.name}" for f in fields(ScriptArguments)} | {f"--{f.name}" for f in fields(SFTConfig)}
    return flags


def _lm_eval_flags() -> set[str]:
    from lm_eval._cli import HarnessCLI

    run = HarnessCLI()._subparsers.choices["run"]
    return {s for a in run._actions for s in a.option_strings}


def _as_fm5(tokens: list[str]) -> list[str] | None:
    """The fm5 command a line runs (under torchrun / accelerate / python -m too), or None."""
    for i, t in enumerate(tokens):
        if t == "fm5" and i == 0:
            return tokens[1:]
        if t == "-m" and i + 1 < len(tokens) and tokens[i + 1] in ("fm5", "harness_ext.cli"):
            return tokens[i + 2:]
        if t == "-m" and i + 1 < len(tokens) and tokens[i + 1] == "training.sft":
            return ["train", *tokens[i + 2:]]
    return None


def test_the_readme_shows_the_commands():
    commands = readme_commands()
    subs = {(_as_fm5(_tokens(c)) or [""])[0] for c in commands}
    assert {"train", "eval", "report", "gate", "data", "tasks", "demo"} <= subs, subs
    assert any(c.startswith("lm_eval ") for c in commands)


@pytest.mark.parametrize("line", readme_commands())
def test_each_readme_command_names_a_command_and_its_flags(line):
    tokens = _tokens(line)
    argv = _as_fm5(tokens)
    if argv is not None:
        from fm5.cli import build_parser

        if not argv or argv[0].startswith("-"):
            assert set(argv) <= {"--help", "-h"}, line
            return
        sub = argv[0]
        assert sub in build_parser()._subparsers._group_actions[0].choices, f"{line}: no command fm5 {sub}"
        unknown = _flags(argv[1:]) - _fm5_flags(sub)
        assert not unknown, f"{line}: fm5 {sub} does not take {sorted(unknown)}"
    elif "lm_eval" in tokens:
        unknown = _flags(tokens[tokens.index("lm_eval") + 1:]) - _lm_eval_flags()
        assert not unknown, f"{line}: lm_eval does not take {sorted(unknown)}"
    elif tokens[0] in ("torchrun", "accelerate") and "-m" not in tokens:  # the launcher alone, named in the text
        assert all(t.startswith("-") or t.isdigit() or t == "launch" for t in tokens[1:]), line
    else:
        module = tokens[tokens.index("-m") + 1] if "-m" in tokens else tokens[0]
        assert module in ("lm_eval", "fm5", "harness_ext.cli", "training.sft"), f"{line}: unknown program"


def test_the_cheap_readme_commands_run_as_written(tmp_path, small_qa, capsys):
    """`fm5 --help`, `fm5 data --data QA`, `fm5 tasks`, `fm5 gate --help` and the README's `fm5 train` line with
    --check, in this process, with QA and DIR filled in."""
    from fm5.cli import main as fm5

    shown = readme_commands()
    fill = {"QA": str(small_qa), "DIR": str(tmp_path / "run")}
    ran = 0
    for line in shown:
        argv = _as_fm5(_tokens(line))
        if line in ("fm5 data --data QA", "fm5 tasks") or line.startswith("fm5 train --config training/configs/smollm2"
                                                                         "_cpu.yaml --data QA --output_dir DIR"):
            argv = [fill.get(a, a) for a in argv if a != "--key"]
            argv = [a for a in argv if a != "value"] + (["--check"] if argv[0] == "train" else [])
            assert fm5(argv) == 0, line
            ran += 1
        elif line in ("fm5 --help", "fm5 gate --help"):
            with pytest.raises(SystemExit) as done:
                fm5(argv)
            assert done.value.code == 0
            ran += 1
    assert ran >= 4, shown
    capsys.readouterr()

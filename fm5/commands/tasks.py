"""`fm5 tasks [install | uninstall]` (harness_ext.register) and `fm5 tasks-path`."""

from __future__ import annotations


def add_arguments(p) -> None:
    p.description = ("install: link the fm5_qa task folder into the lm-eval of this environment (a real folder of "
                     "symlinks, so stock `lm_eval --tasks fm5_qa_open,...` works from any directory and upgrades of "
                     "this package need no re-install); uninstall: remove exactly what install made; no argument: "
                     "say where the tasks are registered.")
    p.add_argument("action", nargs="?", choices=("install", "uninstall"))


def main(args) -> int:
    from harness_ext import register

    if args.action == "install":
        print(register.install())
    elif args.action == "uninstall":
        print(register.uninstall())
    else:
        print(register.status().describe())
    return 0


def add_path_arguments(p) -> None:
    """`fm5 tasks-path` takes no argument."""


def main_path(args) -> int:
    from harness_ext import tasks_path

    print(tasks_path())
    return 0

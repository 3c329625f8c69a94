"""The package's promises about itself: bounded dependency ranges that hold the installed versions, a command layer
on top (no import loop, `fm5 --help` without torch, numpy or lm-eval)."""

import ast
import subprocess
import sys
import tomllib
from importlib.metadata import version

from packaging.requirements import Requirement

from conftest import REPO

PACKAGES = ("fm5", "harness_ext", "training", "reports", "tasks")
# what each layer may import: the library at the bottom, the recipe, the report and the lm-eval tasks on it, the
# commands (fm5) on top of everything
LAYERS = {"harness_ext": {"harness_ext"}, "tasks": {"harness_ext", "tasks"}, "training": {"harness_ext", "training"},
          "reports": {"harness_ext", "reports"}, "fm5": set(PACKAGES)}


def test_dependency_ranges_are_bounded_and_hold_the_installed_versions():
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    for line in project["dependencies"] + project["optional-dependencies"]["dev"]:
        req = Requirement(line)
        assert any(s.operator in ("<", "<=", "~=", "==") for s in req.specifier), f"{line}: no upper bound"
        installed = version(req.name)
        assert req.specifier.contains(installed, prereleases=True), f"{req.name} {installed} outside {line}"


def _imports() -> dict[str, set[str]]:
    """module -> the project modules it imports (at the top or inside functions), from the source."""
    graph = {}
    for package in PACKAGES:
        for path in (REPO / package).rglob("*.py"):
            name = ".".join(path.relative_to(REPO).with_suffix("").parts).removesuffix(".__init__")
            found = set()
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.Import):
                    found |= {a.name for a in node.names}
                elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                    found |= {node.module} | {f"{node.module}.{a.name}" for a in node.names}
            graph[name] = {m for m in found if m.split(".")[0] in PACKAGES}
    return graph


def test_command_layer_on_top_and_no_import_loop():
    graph = _imports()
    modules = set(graph)
    edges = {m: {d if d in modules else d.rsplit(".", 1)[0] for d in deps} & modules - {m}
             for m, deps in graph.items()}
    # strict layers: no module imports a package above its own (the library never imports a command)
    for module, deps in edges.items():
        above = {d for d in deps if d.split(".")[0] not in LAYERS[module.split(".")[0]]}
        assert not above, f"{module} imports {sorted(above)}"
    # no cycle among the modules (depth-first search over the import edges)
    state = {}

    def visit(m, path):
        state[m] = "open"
        for d in edges[m]:
            assert state.get(d) != "open", f"import loop: {' -> '.join(path + [m, d])}"
            if d not in state:
                visit(d, path + [m])
        state[m] = "done"

    for m in sorted(edges):
        if m not in state:
            visit(m, [])


def test_commands_live_in_fm5_commands_and_no_argparse_below_fm5():
    """Every `fm5` command is a module of fm5/commands with `add_arguments` and `main`; no module of the library,
    the recipe, the report or the tasks parses a command line (imports argparse, defines either function)."""
    from fm5 import cli

    parser = cli.build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    commands = REPO / "fm5" / "commands"
    for name, p in sub.choices.items():
        func = p.get_default("func")
        assert func.__module__.startswith("fm5.commands."), f"fm5 {name}: {func.__module__}"
    assert {p.stem for p in commands.glob("*.py")} - {"__init__"} == \
        {"train", "eval", "report", "gate", "data", "tasks", "demo"}
    for package in ("harness_ext", "training", "reports", "tasks"):
        for path in (REPO / package).rglob("*.py"):
            tree = ast.parse(path.read_text())
            imported = {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names} | \
                {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
            assert "argparse" not in imported, f"{path.relative_to(REPO)} imports argparse"
            defined = {n.name for n in tree.body if isinstance(n, ast.FunctionDef)}
            assert not defined & {"add_arguments", "main"}, f"{path.relative_to(REPO)} defines a command"


def test_help_imports_no_heavy_library():
    code = ("import sys; from fm5 import cli; cli.build_parser().format_help(); "
            "print(sorted({m.split('.')[0] for m in sys.modules} & {'torch', 'numpy', 'lm_eval', 'transformers', "
            "'trl', 'peft', 'datasets', 'jinja2', 'yaml'}))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_the_module_order_names_test_modules_that_exist():
    """conftest.MODULE_ORDER (how `make test` hands modules to its workers) names only modules that exist, once each:
    a renamed module must not drop silently to the end of the queue."""
    from conftest import MODULE_ORDER

    assert len(set(MODULE_ORDER)) == len(MODULE_ORDER)
    assert [name for name in MODULE_ORDER if not (REPO / "tests" / name).is_file()] == []

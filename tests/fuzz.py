"""Seeded mutations of valid inputs, and one in-process `fm5` call per case.

A case starts from a valid document (a JSON/YAML value, or the bytes of a file) and applies one mutation: a value
replaced by another type, NaN / Infinity / huge numbers, an empty or deeply nested value, a key removed or
duplicated, truncation at a random byte, invalid UTF-8, NUL bytes, or the file missing or replaced by a symlink to
a folder. `run_cli` calls `fm5.cli.main` in this process (a subprocess per case would cost a second each)
and returns (exit code, stderr); any exception escaping it is what a user would see as a traceback.
"""

from __future__ import annotations

import copy
import functools
import json
import random
from pathlib import Path

ODD_VALUES = [None, True, False, 0, -1, 1, 0.5, -1e308, 1e308, float("nan"), float("inf"), float("-inf"),
              10 ** 400, -(10 ** 30), "", " ", "x", "NaN", "\u00e9\u2603", "\ud800x", "\x00", "a\nb", [], {}, [1, "a", None],
              {"k": "v"}, "../../etc/passwd", "9" * 400]
FILE_MUTATIONS = ("missing", "folder", "empty")


@functools.cache  # one per depth (building 100,000 levels costs ~70 ms of the garbage collector's time); never mutated
def deep(depth: int):
    value = []
    for _ in range(depth):
        value = [value]
    return value


def _paths(value, prefix=()):
    """Every (path, value) in a JSON-like tree, the root included."""
    yield prefix, value
    if isinstance(value, dict):
        for k, v in value.items():
            yield from _paths(v, prefix + (k,))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _paths(v, prefix + (i,))


def _set(root, path, value):
    if not path:
        return value
    node = root
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    return root


def mutate_value(value, rng: random.Random):
    """One structural mutation of a JSON-like value (the input is not changed)."""
    root = copy.deepcopy(value)
    paths = list(_paths(root))
    path, node = rng.choice(paths)
    op = rng.randrange(6)
    if op == 0 and path:  # remove a key / an item
        parent = root
        for key in path[:-1]:
            parent = parent[key]
        del parent[path[-1]]
        return root
    if op == 1:  # a deeply nested value
        return _set(root, path, deep(rng.choice([50, 1500, 100_000])))
    if op == 2 and isinstance(node, (int, float)) and not isinstance(node, bool):  # a near-miss number
        return _set(root, path, rng.choice([node * 1e300, -node, node + 0.5, 0, float("nan")]))
    if op == 3 and isinstance(node, str):  # the same text, with odd characters
        return _set(root, path, rng.choice([node + "\x00", node[: len(node) // 2], node * 50, node.upper(), ""]))
    return _set(root, path, copy.deepcopy(rng.choice(ODD_VALUES)))


def dumps_json(value, rng: random.Random) -> bytes:
    """JSON text as a lenient writer would produce it: NaN / Infinity allowed, sometimes a duplicated key."""
    try:
        text = json.dumps(value, allow_nan=True, ensure_ascii=rng.random() < 0.5)
    except (RecursionError, ValueError):
        text = "[" * 100_000 + "]" * 100_000
    if rng.random() < 0.1 and text.startswith("{") and len(text) > 2:  # a duplicated key: `{"k": 1, "k": ...}`
        first = text[1:].split(",", 1)[0]
        text = "{" + first + "," + text[1:]
    return text.encode("utf-8", "surrogatepass")


def mutate_bytes(data: bytes, rng: random.Random) -> bytes:
    """One byte-level mutation: truncation, invalid UTF-8, NUL bytes, a flipped or dropped byte range."""
    if not data:
        return rng.choice([b"\x00", b"\xff", b"{"])
    i = rng.randrange(len(data) + 1)
    op = rng.randrange(5)
    if op == 0:
        return data[:i]
    if op == 1:
        return data[:i] + rng.choice([b"\xff", b"\xc3", b"\xed\xa0\x80", b"\xfe\xff"]) + data[i:]
    if op == 2:
        return data[:i] + b"\x00" * rng.randint(1, 4) + data[i:]
    if op == 3:
        j = min(len(data), i + rng.randint(1, 40))
        return data[:i] + data[j:]
    return data[:i] + bytes([rng.randrange(256)]) + data[i + 1:]


def write_case(path: Path, data: bytes | None) -> None:
    """Write ``data`` at ``path``; None: the file is a symlink to a folder (a path that is not a file)."""
    if path.is_symlink() or path.is_file():
        path.unlink()
    if data is None:
        path.symlink_to(path.parent, target_is_directory=True)
    else:
        path.write_bytes(data)


def run_cli(argv: list[str]) -> tuple[int, str]:
    """`fm5 ARGV` in this process (conftest.fm5_in_process): (exit code, stderr); an exception escaping the command
    is exit code 3 with its traceback, what a user would see."""
    from conftest import fm5_in_process

    try:
        proc = fm5_in_process(*argv)
    except Exception as exc:  # noqa: BLE001 - escaped the CLI: a traceback for a user
        import traceback

        return 3, "Traceback (escaped fm5): " + "".join(traceback.format_exception(exc)[-3:])
    return proc.returncode, proc.stderr


class Tally:
    """Exit codes per input kind, and the first few bad cases with what made them bad."""

    def __init__(self, kind: str):
        self.kind, self.codes, self.bad = kind, {}, []

    def check(self, case: str, code: int, stderr: str, allowed=(0, 2)) -> None:
        self.codes[code] = self.codes.get(code, 0) + 1
        lines = [ln for ln in stderr.splitlines() if ln.strip()]
        problem = None
        if code not in allowed:
            problem = f"exit {code}"
        elif code == 2 and len(lines) != 1:
            problem = f"{len(lines)} stderr lines"
        elif "Traceback" in stderr:
            problem = "traceback"
        if problem and len(self.bad) < 8:
            self.bad.append(f"{case}: {problem}: {stderr.strip()[-600:]!r}")

    @property
    def cases(self) -> int:
        return sum(self.codes.values())

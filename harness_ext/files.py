"""Files in and out: JSON (and YAML) read with one-line errors naming the file; outputs written whole or not at all (a temporary
file in the same folder, then an atomic rename)."""

from __future__ import annotations

import json
import math
import os
import tempfile
from pathlib import Path


def write_atomic(path: str | os.PathLike, data: str | bytes) -> None:
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data.encode("utf-8") if isinstance(data, str) else data)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def read_json(path: str | os.PathLike, error: type[Exception], allow_nan: bool = True) -> dict:
    """The JSON object in a file, or ``error`` with one line naming the file (unreadable, not UTF-8, invalid or too
    deeply nested JSON, not an object; NaN / Infinity too unless ``allow_nan``)."""
    try:
        data = Path(path).read_bytes()
    except OSError as err:
        raise error(f"{path}: cannot read ({err.strerror or err})") from None
    return loads(data, str(path), error, allow_nan)


def loads(data: bytes | str, where: str, error: type[Exception], allow_nan: bool = True) -> dict:
    """The JSON object in ``data``; ``where`` names the source in the message (`file` or `file:line`)."""
    try:
        text = data.decode("utf-8") if isinstance(data, bytes) else data
        value = json.loads(text, parse_constant=None if allow_nan else _no_constant)
    except UnicodeDecodeError as err:
        raise error(f"{where}: not UTF-8 (byte {err.start})") from None
    except json.JSONDecodeError as err:
        raise error(f"{where}: invalid JSON at line {err.lineno} column {err.colno} ({err.msg})") from None
    except RecursionError:
        raise error(f"{where}: invalid JSON (nested too deeply)") from None
    except ValueError as err:
        raise error(f"{where}: invalid JSON ({str(err)[:120]})") from None
    if not isinstance(value, dict):
        raise error(f"{where}: expected a JSON object, got {type(value).__name__}")
    return value


def _no_constant(name: str):
    raise ValueError(f"{name} is not a number")


def load_yaml(text: str):
    """``yaml.safe_load`` with libyaml's parser where PyYAML has it (much faster, and it refuses absurd nesting
    itself instead of recursing into it)."""
    import yaml

    return yaml.load(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))  # noqa: S506 - a safe loader


def read_yaml(path: str | os.PathLike, error: type[Exception], what: str = "YAML file"):
    """The YAML document in a file (``None`` when empty), or ``error`` with one line naming the file and ``what`` it
    is (unreadable, not UTF-8, invalid or too deeply nested YAML). The one reader of the gate's and the training's
    configs."""
    import yaml

    try:
        return load_yaml(Path(path).read_bytes().decode("utf-8"))
    except OSError as err:
        raise error(f"{path}: cannot read the {what} ({err.strerror or err})") from None
    except UnicodeDecodeError as err:
        raise error(f"{path}: the {what} is not UTF-8 (byte {err.start})") from None
    except (yaml.YAMLError, RecursionError) as err:
        raise error(f"{path}: invalid YAML in the {what} ({str(err).splitlines()[0] or 'nested too deeply'})") \
            from None


def number(value, where: str, error: type[Exception] = ValueError, *, integer: bool = False,
           minimum: float | None = 0, text: bool = False) -> int | float:
    """The one check of a number read from a file or a command line: a real int or float (not a bool; a numeric
    string only with ``text``, as lm-eval logs log-likelihoods), finite, at least ``minimum`` (None: any), whole with
    ``integer``; else ``error`` with one line naming ``where``."""
    raw = value
    if text and isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            value = None
    ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    if ok and isinstance(value, int):
        ok = abs(value) < 2 ** 63
    if ok:
        ok = math.isfinite(value) and (minimum is None or value >= minimum) and (not integer or value == int(value))
    if not ok:
        what = "a whole number" if integer else "a finite number"
        raise error(f"{where}: expected {what}{'' if minimum is None else f' >= {minimum:g}'}, got {raw!r:.40}")
    return int(value) if integer else value

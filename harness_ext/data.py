"""The FM 5-0 QA set: reading, validating, stable ids and the one train/test split.

This is the only module that knows the file format and the split rule; training and the lm-eval tasks both call
it, so they can never disagree about which questions are held out.

A QA file is JSON Lines (one object per line) or a JSON array of objects. Each object needs the string fields
``passage``, ``question`` and ``answer`` (the original notebook's ``qa_pairs.jsonl`` shape); ``id`` is optional and
derived from the question and passage when absent. Every other field is kept as is.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

from harness_ext.errors import Fm5Error

REQUIRED_FIELDS = ("passage", "question", "answer")
# fields that must hold at least one non-blank character (a passage may be empty: closed-book rows exist)
NON_EMPTY_FIELDS = ("question", "answer")
DATA_ENV = "FM5_DATA"
DEFAULT_TEST_SIZE = 0.1
DEFAULT_SEED = 42


class DataError(Fm5Error):
    """Unusable input. ``str(err)`` is one line: ``FILE:LINE: field 'NAME': what is wrong``."""

    def __init__(self, path: str | os.PathLike, message: str, line: int | None = None, field: str | None = None):
        self.path, self.line, self.field = str(path), line, field
        where = self.path if line is None else f"{self.path}:{line}"
        what = message if field is None else f"field '{field}': {message}"
        super().__init__(f"{where}: {what}")


def resolve_data_path(path: str | os.PathLike | None = None) -> Path:
    """The QA file to use: ``path`` if given, else ``$FM5_DATA``; a clear error when neither is set."""
    path = path or os.environ.get(DATA_ENV)
    if not path:
        raise DataError(
            "<fm5 data>",
            f"no QA file given: pass --metadata '{{\"fm5_data\": \"PATH\"}}' to lm_eval, "
            f"--data PATH to fm5, or set {DATA_ENV}=PATH",
        )
    resolved = Path(path).expanduser()
    if not resolved.is_file():
        raise DataError(resolved, "no such file")
    return resolved


def derive_id(row: dict) -> str:
    """A stable id for a row without one: the same text gives the same id in every process."""
    digest = hashlib.sha256(f"{row['question']}\x00{row['passage']}".encode()).hexdigest()
    return f"q-{digest[:12]}"


def file_sha256(path: str | os.PathLike) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def _parse(path: Path, raw: bytes) -> list[tuple[int, object]]:
    """(line number, parsed object) for each record of a JSONL or JSON-array file."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        line = raw[: err.start].count(b"\n") + 1
        raise DataError(path, f"invalid UTF-8 (byte {err.start})", line=line) from None
    if not text.strip():
        raise DataError(path, "the file is empty")
    stripped = text.lstrip()
    if stripped.startswith("["):
        first_line = text[: len(text) - len(stripped)].count("\n") + 1
        try:
            records = json.loads(text)
        except json.JSONDecodeError as err:
            raise DataError(path, f"malformed JSON: {err.msg}", line=err.lineno) from None
        # objects of a pretty-printed array do not have a line each; report the array position instead
        return [(first_line if len(records) == 1 else i + 1, rec) for i, rec in enumerate(records)]
    out = []
    for lineno, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            out.append((lineno, json.loads(line)))
        except json.JSONDecodeError as err:
            raise DataError(path, f"malformed JSON: {err.msg} (column {err.colno})", line=lineno) from None
    return out


def load_qa(path: str | os.PathLike) -> list[dict]:
    """Read and validate a QA file; rows come back in file order, each with a string ``id``."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as err:
        raise DataError(path, err.strerror or str(err)) from None
    records = _parse(path, raw)
    if not records:
        raise DataError(path, "the file holds no rows")
    rows, seen = [], {}
    for lineno, rec in records:
        if not isinstance(rec, dict):
            raise DataError(path, f"expected a JSON object, got {type(rec).__name__}", line=lineno)
        for field in REQUIRED_FIELDS:
            if field not in rec:
                raise DataError(path, "missing", line=lineno, field=field)
            if not isinstance(rec[field], str):
                raise DataError(path, f"must be a string, got {type(rec[field]).__name__}", line=lineno, field=field)
        for field in NON_EMPTY_FIELDS:
            if not rec[field].strip():
                raise DataError(path, "is empty", line=lineno, field=field)
        row = dict(rec)
        if "id" in row:
            if not isinstance(row["id"], (str, int)) or isinstance(row["id"], bool) or str(row["id"]).strip() == "":
                raise DataError(path, "must be a non-empty string or integer", line=lineno, field="id")
            row["id"] = str(row["id"])
        else:
            row["id"] = derive_id(row)
        if row["id"] in seen:
            raise DataError(
                path, f"duplicate id {row['id']!r} (first on line {seen[row['id']]})", line=lineno, field="id"
            )
        seen[row["id"]] = lineno
        rows.append(row)
    return rows


@dataclass(frozen=True)
class Split:
    """Which rows are held out. Depends only on the ids, the size and the seed: not on file order or process."""

    test_size: float = DEFAULT_TEST_SIZE
    seed: int = DEFAULT_SEED

    def n_test(self, n_rows: int) -> int:
        if self.test_size >= 1:
            n = int(self.test_size)
        elif 0 < self.test_size < 1:
            n = round(self.test_size * n_rows)
        else:
            raise ValueError(f"test_size must be a fraction in (0, 1) or a row count >= 1, got {self.test_size}")
        return min(max(n, 1), n_rows - 1) if n_rows > 1 else 0

    def _rank(self, row_id: str) -> str:
        return hashlib.sha256(f"fm5-split:{self.seed}:{row_id}".encode()).hexdigest()

    def test_ids(self, rows: list[dict]) -> set[str]:
        ranked = sorted((r["id"] for r in rows), key=self._rank)
        return set(ranked[: self.n_test(len(rows))])

    def apply(self, rows: list[dict]) -> tuple[list[dict], list[dict]]:
        """(train, test), each in file order."""
        test = self.test_ids(rows)
        return [r for r in rows if r["id"] not in test], [r for r in rows if r["id"] in test]

    def as_dict(self) -> dict:
        return {"test_size": self.test_size, "seed": self.seed, "rule": "sha256(fm5-split:SEED:ID) ascending"}


def load_split(
    path: str | os.PathLike | None = None, test_size: float = DEFAULT_TEST_SIZE, seed: int = DEFAULT_SEED
) -> tuple[list[dict], list[dict]]:
    """Load ``path`` (or ``$FM5_DATA``) and return its (train, test) rows."""
    return Split(test_size, seed).apply(load_qa(resolve_data_path(path)))

"""A QA file (and a document file): reading and validating it with one-line errors naming the file, line and field,
stable ids for rows and texts. A QA file is JSON Lines (one object per line) or a JSON array of objects. Each object
needs the string fields ``passage``, ``question`` and ``answer`` (the original notebook's ``qa_pairs.jsonl`` shape);
``id`` is optional and derived from the question and passage when absent. Every other field is kept as is."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from harness_ext.errors import Fm5Error

REQUIRED_FIELDS = ("passage", "question", "answer")
# fields that must hold at least one non-blank character (a passage may be empty: closed-book rows exist)
NON_EMPTY_FIELDS = ("question", "answer")
DATA_ENV = "FM5_DATA"


class DataError(Fm5Error):
    """Unusable input. ``str(err)`` is one line: ``FILE:LINE: field 'NAME': what is wrong``."""

    def __init__(self, path: str | os.PathLike, message: str, line: int | None = None, field: str | None = None):
        self.path, self.line, self.field = str(path), line, field
        where = self.path if line is None else f"{self.path}:{line}"
        what = message if field is None else f"field '{field}': {message}"
        super().__init__(f"{where}: {what}")


def existing_file(path: str | os.PathLike, what: str = "") -> Path:
    """``path`` (``~`` expanded), which must be a file; ``what`` names the setting in the error (``fm5_document``)."""
    resolved = Path(str(path)).expanduser()
    if not resolved.is_file():
        raise DataError(resolved, f"no such file ({what})" if what else "no such file")
    return resolved


def resolve_data_path(path: str | os.PathLike | None = None) -> Path:
    """The QA file to use: ``path`` if given, else ``$FM5_DATA``; a clear error when neither is set."""
    path = path or os.environ.get(DATA_ENV)
    if not path:
        raise DataError(
            "<fm5 data>",
            f"no QA file given: pass --metadata '{{\"fm5_data\": \"PATH\"}}' to lm_eval, "
            f"--data PATH to fm5, or set {DATA_ENV}=PATH",
        )
    return existing_file(path)


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
        except (RecursionError, ValueError) as err:  # nested too deeply; an integer of over 4300 digits
            raise DataError(path, f"malformed JSON: {_reason(err)}", line=first_line) from None
        if not isinstance(records, list):
            raise DataError(path, "a JSON file holds one array of rows", line=first_line)
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
        except (RecursionError, ValueError) as err:
            raise DataError(path, f"malformed JSON: {_reason(err)}", line=lineno) from None
    return out


def _reason(err: Exception) -> str:
    return "nested too deeply" if isinstance(err, RecursionError) else str(err).split(";")[0][:100]


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
            try:
                rec[field].encode("utf-8")
            except UnicodeEncodeError as err:
                raise DataError(path, f"holds an unpaired surrogate escape at character {err.start}, not text",
                                line=lineno, field=field) from None
        for field in NON_EMPTY_FIELDS:
            if not rec[field].strip():
                raise DataError(path, "is empty", line=lineno, field=field)
        row = dict(rec)
        if "id" in row:
            if not isinstance(row["id"], (str, int)) or isinstance(row["id"], bool) or str(row["id"]).strip() == "":
                raise DataError(path, "must be a non-empty string or integer", line=lineno, field="id")
            row["id"] = str(row["id"])
            if not row["id"].isprintable() or row["id"] != row["id"].encode("utf-8", "replace").decode("utf-8"):
                raise DataError(path, "must be printable text (no control characters or surrogate escapes)",
                                line=lineno, field="id")
        else:
            row["id"] = derive_id(row)
        if row["id"] in seen:
            raise DataError(
                path, f"duplicate id {row['id']!r} (first on line {seen[row['id']]})", line=lineno, field="id"
            )
        seen[row["id"]] = lineno
        rows.append(row)
    return rows


def text_rows(texts: list[str]) -> list[dict]:
    """A document file's texts as rows with stable ids (``doc-`` + 12 hex of the text's sha256), each text once;
    ``passage`` holds the text, so that ``Split`` and the span rule treat them like QA rows' passages (a document
    file alone: ``document_inputs`` and the continuation probe)."""
    return [{"id": text_id(t), "passage": t, "question": "", "answer": ""}
            for t in dict.fromkeys(t.strip() for t in texts if t.strip())]


def load_documents(path: str | os.PathLike) -> list[str]:
    """A document file for document training: JSONL (or a JSON array) of objects with a string ``text`` field (e.g.
    ``fm5_chunks.jsonl``: the whole manual by page chunk). Blank texts are skipped."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as err:
        raise DataError(path, err.strerror or str(err)) from None
    texts = []
    for lineno, rec in _parse(path, raw):
        if not isinstance(rec, dict):
            raise DataError(path, f"expected a JSON object, got {type(rec).__name__}", line=lineno)
        if "text" not in rec:
            raise DataError(path, "missing", line=lineno, field="text")
        if not isinstance(rec["text"], str):
            raise DataError(path, f"must be a string, got {type(rec['text']).__name__}", line=lineno, field="text")
        if rec["text"].strip():
            texts.append(rec["text"].strip())
    if not texts:
        raise DataError(path, "the file holds no text")
    return texts


def text_id(text: str) -> str:
    """A text's stable id: ``doc-`` + 12 hex of its sha256 (document rows, ``text_rows``, fm5_run.json)."""
    return f"doc-{hashlib.sha256(text.encode()).hexdigest()[:12]}"

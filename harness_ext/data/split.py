"""The one train/test split of a QA file and its seen/unseen halves (``Split``, ``Groups``), its defaults and seed
offsets (the registry of split settings), and the test split as the tasks read it (``load_test_docs``)."""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass

from harness_ext.data.qa_file import DataError, load_qa, resolve_data_path

DEFAULT_TEST_SIZE = 0.1
DEFAULT_SEED = 42
DEFAULT_SEEN_FRACTION = 0.5
DEFAULT_EVAL_SIZE = 0.1
# every other draw is keyed by the split seed plus its own offset, so that no two draws share a ranking
EVAL_SEED_OFFSET = 1  # training's eval rows, carved out of the train side (Split.eval_split)
TRAIN_SUBSAMPLE_SEED_OFFSET = 2  # max_train_rows
DOCUMENT_SUBSAMPLE_SEED_OFFSET = 3  # max_document_rows


def split_seed(value=None, alias=None) -> int:
    """The split seed from task metadata: ``fm5_split_seed`` (``value``), or its older name ``fm5_seed`` (``alias``),
    else DEFAULT_SEED; the two given with different values is an error."""
    if value is not None and alias is not None and int(value) != int(alias):
        raise DataError("<task metadata>", f"fm5_split_seed={value} and fm5_seed={alias} name one setting; give one")
    chosen = value if value is not None else alias
    return DEFAULT_SEED if chosen is None else int(chosen)


@dataclass(frozen=True)
class Split:
    """Which rows are held out, and which held-out passages training may read. Depends only on the ids, the sizes
    and the seed: not on file order or process."""

    test_size: float = DEFAULT_TEST_SIZE
    seed: int = DEFAULT_SEED
    seen_fraction: float = DEFAULT_SEEN_FRACTION

    def n_test(self, n_rows: int) -> int:
        if self.test_size >= 1:
            n = int(self.test_size)
        elif 0 < self.test_size < 1:
            n = round(self.test_size * n_rows)
        else:
            raise ValueError(f"test_size must be a fraction in (0, 1) or a row count >= 1, got {self.test_size}")
        return min(max(n, 1), n_rows - 1) if n_rows > 1 else 0

    def _rank(self, row_id: str, salt: str = "fm5-split") -> str:
        return hashlib.sha256(f"{salt}:{self.seed}:{row_id}".encode()).hexdigest()

    def test_ids(self, rows: list[dict]) -> set[str]:
        ranked = sorted((r["id"] for r in rows), key=self._rank)
        return set(ranked[: self.n_test(len(rows))])

    def apply(self, rows: list[dict]) -> tuple[list[dict], list[dict]]:
        """(train, test), each in file order."""
        test = self.test_ids(rows)
        return [r for r in rows if r["id"] not in test], [r for r in rows if r["id"] in test]

    def seen_ids(self, rows: list[dict]) -> set[str]:
        """The test ids whose passages document training reads: the first round(seen_fraction x n_test) test ids
        by ``sha256("fm5-seen:SEED:ID")``."""
        if not 0 <= self.seen_fraction <= 1:
            raise ValueError(f"seen_fraction must be in [0, 1], got {self.seen_fraction}")
        test = sorted(self.test_ids(rows), key=lambda i: self._rank(i, "fm5-seen"))
        return set(test[: round(self.seen_fraction * len(test))])

    def groups(self, rows: list[dict]) -> Groups:
        """The ``train``, ``test``, ``seen`` and ``unseen`` rows (``seen`` + ``unseen`` = ``test``), in file order."""
        train, test = self.apply(rows)
        seen = self.seen_ids(rows)
        return Groups(train, test, [r for r in test if r["id"] in seen], [r for r in test if r["id"] not in seen])

    def eval_split(self, train: list[dict], eval_size: float = DEFAULT_EVAL_SIZE) -> tuple[list[dict], list[dict]]:
        """(train, eval): training's eval rows (eval loss, early stopping), carved out of the train side with the
        same rule and seed + EVAL_SEED_OFFSET; none when eval_size is 0."""
        if not eval_size:
            return train, []
        return Split(eval_size, self.seed + EVAL_SEED_OFFSET).apply(train)

    def as_dict(self) -> dict:
        return {"test_size": self.test_size, "seed": self.seed, "rule": "sha256(fm5-split:SEED:ID) ascending",
                "seen_fraction": self.seen_fraction, "seen_rule": "test ids by sha256(fm5-seen:SEED:ID) ascending"}


@dataclass(frozen=True)
class Groups:
    """A QA file's rows by role (``Split.groups``), each list in file order."""

    train: list[dict]  # what training may learn from
    test: list[dict]  # held out: seen + unseen
    seen: list[dict]  # held out; document training reads their passages
    unseen: list[dict]  # held out; their passages (and any text sharing a long span with one) are withheld

    @property
    def unseen_ids(self) -> set[str]:
        return {r["id"] for r in self.unseen}

    def ids(self) -> dict[str, list[str]]:
        """The held-out ids as fm5_run.json and `fm5 data --ids` list them."""
        return {"test_ids": [r["id"] for r in self.test], "test_seen_ids": [r["id"] for r in self.seen],
                "test_unseen_ids": [r["id"] for r in self.unseen]}

    def summary(self) -> dict[str, int]:
        return {"test": len(self.test), "test_seen": len(self.seen), "test_unseen": len(self.unseen)}


def test_doc(row: dict, unseen: set[str]) -> dict:
    """A held-out row as the tasks log it: id, passage, question, answer and its ``group`` (seen / unseen)."""
    return {"id": row["id"], "passage": row["passage"], "question": row["question"], "answer": row["answer"],
            "group": "unseen" if row["id"] in unseen else "seen"}


def load_test_docs(path: str | os.PathLike | None = None, test_size: float = DEFAULT_TEST_SIZE,
                   seed: int = DEFAULT_SEED, seen_fraction: float = DEFAULT_SEEN_FRACTION) -> list[dict]:
    """The test split of ``path`` (or ``$FM5_DATA``) as task documents (``test_doc``), in file order."""
    groups = Split(test_size, seed, seen_fraction).groups(load_qa(resolve_data_path(path)))
    return [test_doc(r, groups.unseen_ids) for r in groups.test]


def load_split(
    path: str | os.PathLike | None = None, test_size: float = DEFAULT_TEST_SIZE, seed: int = DEFAULT_SEED
) -> tuple[list[dict], list[dict]]:
    """Load ``path`` (or ``$FM5_DATA``) and return its (train, test) rows."""
    return Split(test_size, seed).apply(load_qa(resolve_data_path(path)))

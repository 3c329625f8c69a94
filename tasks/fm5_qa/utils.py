"""Hooks that adapt lm-eval's signatures to harness_ext; no logic of their own."""

import datasets

from harness_ext.data import DEFAULT_SEED, DEFAULT_TEST_SIZE, load_split

DOC_FIELDS = ("id", "passage", "question", "answer")


def load_test_docs(fm5_data=None, fm5_test_size=DEFAULT_TEST_SIZE, fm5_seed=DEFAULT_SEED, **_metadata):
    """`custom_dataset` hook: lm-eval passes the task metadata (with --metadata and --model_args merged in)."""
    _, test = load_split(fm5_data, float(fm5_test_size), int(fm5_seed))
    return {"test": datasets.Dataset.from_list([{k: row[k] for k in DOC_FIELDS} for row in test])}

"""Hooks that adapt lm-eval's signatures to harness_ext; no logic of their own."""

import datasets

from harness_ext.data import DEFAULT_SEED, DEFAULT_TEST_SIZE, load_split
from harness_ext.probe import DEFAULT_DISTRACTORS, load_docs

DOC_FIELDS = ("id", "passage", "question", "answer")


def load_test_docs(fm5_data=None, fm5_test_size=DEFAULT_TEST_SIZE, fm5_seed=DEFAULT_SEED, **_metadata):
    """`custom_dataset` hook: lm-eval passes the task metadata (with --metadata and --model_args merged in)."""
    _, test = load_split(fm5_data, float(fm5_test_size), int(fm5_seed))
    return {"test": datasets.Dataset.from_list([{k: row[k] for k in DOC_FIELDS} for row in test])}


def load_mc_docs(fm5_data=None, fm5_test_size=DEFAULT_TEST_SIZE, fm5_seed=DEFAULT_SEED,
                 fm5_mc_distractors=DEFAULT_DISTRACTORS, fm5_mc_embedding=None, **_metadata):
    """`custom_dataset` hook of the probe: the test split with each question's options (`choices`, `gold`)."""
    docs = load_docs(fm5_data, float(fm5_test_size), int(fm5_seed), fm5_mc_distractors, fm5_mc_embedding)
    return {"test": datasets.Dataset.from_list(docs)}

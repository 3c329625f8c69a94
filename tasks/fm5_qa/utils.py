"""Hooks that adapt lm-eval's signatures to harness_ext; no logic of their own."""

import datasets

from harness_ext.data import DEFAULT_SEEN_FRACTION, DEFAULT_TEST_SIZE, load_test_docs as _test_docs, split_seed
from harness_ext.continuation import load_doc_docs as _doc_docs
from harness_ext.probe import DEFAULT_DISTRACTORS, load_mc_docs as _mc_docs


def load_test_docs(fm5_data=None, fm5_test_size=DEFAULT_TEST_SIZE, fm5_split_seed=None,
                   fm5_seen_fraction=DEFAULT_SEEN_FRACTION, fm5_seed=None, **_metadata):
    """`custom_dataset` hook: lm-eval passes the task metadata (with --metadata and --model_args merged in);
    `fm5_seed` is the older name of `fm5_split_seed`."""
    docs = _test_docs(fm5_data, float(fm5_test_size), split_seed(fm5_split_seed, fm5_seed), float(fm5_seen_fraction))
    return {"test": datasets.Dataset.from_list(docs)}


def load_mc_docs(fm5_data=None, fm5_test_size=DEFAULT_TEST_SIZE, fm5_split_seed=None,
                 fm5_seen_fraction=DEFAULT_SEEN_FRACTION, fm5_mc_distractors=DEFAULT_DISTRACTORS,
                 fm5_mc_embedding=None, fm5_seed=None, **_metadata):
    """`custom_dataset` hook of the probe: the test split with each question's options (`choices`, `gold`)."""
    docs = _mc_docs(fm5_data, float(fm5_test_size), split_seed(fm5_split_seed, fm5_seed), fm5_mc_distractors,
                    fm5_mc_embedding, float(fm5_seen_fraction))
    return {"test": datasets.Dataset.from_list(docs)}


def load_doc_docs(fm5_data=None, fm5_document=None, fm5_test_size=DEFAULT_TEST_SIZE, fm5_split_seed=None,
                  fm5_seen_fraction=DEFAULT_SEEN_FRACTION, fm5_mc_distractors=DEFAULT_DISTRACTORS,
                  fm5_mc_embedding=None, fm5_seed=None, **_metadata):
    """`custom_dataset` hook of the continuation probe: items over the held-out passages of fm5_data, or over the
    held-out texts of fm5_document (a document file alone)."""
    docs, _ = _doc_docs(fm5_data, fm5_document, float(fm5_test_size), split_seed(fm5_split_seed, fm5_seed),
                       fm5_mc_distractors, fm5_mc_embedding, float(fm5_seen_fraction))
    return {"test": datasets.Dataset.from_list(docs)}

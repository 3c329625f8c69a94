"""The FM 5-0 QA set: reading, validating, stable ids, the one train/test split and its seen/unseen halves.

This is the only module that knows the file format and the split rules; training, the lm-eval tasks, the report and
the gate all call it, so they can never disagree about which questions are held out, or whose passage training read.

Groups of a QA file (``Split.groups``):
- ``train``: the rows training learns from (question/answer pairs and passages); training carves its eval rows out
  of them (``Split.eval_split``).
- ``test``: held out, never a question/answer pair of any training input. Divided deterministically into
  ``seen`` (the passage goes into the document corpus of document training) and ``unseen`` (the passage is withheld
  from every training input, and so is any text sharing a long span with it: ``shares_long_span``). Style gains
  lift both halves; knowledge of the document lifts only the seen one.

A QA file is JSON Lines (one object per line) or a JSON array of objects. Each object needs the string fields
``passage``, ``question`` and ``answer`` (the original notebook's ``qa_pairs.jsonl`` shape); ``id`` is optional and
derived from the question and passage when absent. Every other field is kept as is.

Four modules, one package, so that they cannot drift apart: ``qa_file`` (the file format), ``split`` (the split, its
defaults and seeds), ``withholding`` (what training may read) and ``study`` (study questions built from it by rule). Every name is re-exported here, so
``harness_ext.data.X`` is the address callers use.
"""

from __future__ import annotations

# the decontamination rules' names, as this module always exported them
from harness_ext.decontamination import (NEAR_ANSWER_COSINE, NEAR_COSINE, NEAR_QUESTION_COSINE,  # noqa: F401
                                         NEAR_SPAN_WORDS, SPAN_WORDS, continuation_leaks, near_duplicates,
                                         scored_sentences, shares_long_span, span_keys, withheld_spans)
from harness_ext.data.qa_file import (REQUIRED_FIELDS, NON_EMPTY_FIELDS, DATA_ENV, DataError, existing_file,
                                      resolve_data_path, derive_id, file_sha256, load_qa, text_rows, load_documents,
                                      text_id)  # noqa: F401
from harness_ext.data.split import (DEFAULT_TEST_SIZE, DEFAULT_SEED, DEFAULT_SEEN_FRACTION, DEFAULT_EVAL_SIZE,
                                    EVAL_SEED_OFFSET, TRAIN_SUBSAMPLE_SEED_OFFSET, DOCUMENT_SUBSAMPLE_SEED_OFFSET,
                                    split_seed, Split, Groups, test_doc, load_test_docs, load_split)  # noqa: F401
from harness_ext.data.study import study_rows  # noqa: F401
from harness_ext.data.withholding import (Corpus, StudyQuestions, study_questions, unseen_scored, document_corpus, document_rows, withhold_passages,
                                          qa_continuation_leaks, TrainingInputs, training_inputs,
                                          document_inputs)  # noqa: F401

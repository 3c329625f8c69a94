"""harness_ext.run_layout: the split a training run is evaluated on (`split_of_runs`, what `fm5 eval` uses): no model
needed."""

import json

import pytest

from harness_ext import data
from harness_ext.errors import UsageError
from harness_ext.run_layout import split_of_runs


def _run(folder, rows, test_size, seed):
    inputs = data.training_inputs(rows, data.Split(test_size, seed))
    folder.mkdir()
    (folder / "fm5_run.json").write_text(json.dumps({"split": {
        "test_size": test_size, "seed": seed, "seen_fraction": 0.5, "train_ids": [r["id"] for r in inputs.train],
        "eval_ids": [r["id"] for r in inputs.eval], **inputs.groups.ids()}}))
    return folder


def test_the_split_comes_from_the_run_and_a_split_that_scores_trained_rows_is_refused(tmp_path, shared_qa,
                                                                                     shared_rows):
    run = _run(tmp_path / "run", shared_rows, 0.3, 7)
    metadata, note = split_of_runs([run], {"fm5_data": str(shared_qa)})
    assert (metadata["fm5_test_size"], metadata["fm5_split_seed"], metadata["fm5_seen_fraction"]) == (0.3, 7, 0.5)
    assert "split from run's fm5_run.json: test_size 0.3, split seed 7" in note
    # named explicitly: taken as given, and refused when it would score rows the run trained on
    with pytest.raises(UsageError, match=r"run: this split would score \d+ row\(s\) the run trained on"):
        split_of_runs([run], {"fm5_data": str(shared_qa), "fm5_test_size": 0.1, "fm5_split_seed": 42})
    with pytest.raises(UsageError, match="would score"):
        split_of_runs([run], {"fm5_data": str(shared_qa)} | {"fm5_seed": 8})  # the older key too
    # a checkpoint of the run finds the same record; two runs of different splits must be evaluated apart
    (run / "checkpoint-2").mkdir()
    assert split_of_runs([run / "checkpoint-2"], {"fm5_data": str(shared_qa)})[0]["fm5_split_seed"] == 7
    other = _run(tmp_path / "other", shared_rows, 0.1, 42)
    with pytest.raises(UsageError, match="were trained on different splits"):
        split_of_runs([run, other], {"fm5_data": str(shared_qa)})
    assert split_of_runs([tmp_path], {"x": 1}) == ({"x": 1}, "")  # no training record: nothing changes


def test_a_document_only_run_is_evaluated_on_its_own_file(tmp_path, shared_qa):
    """A run trained on a document file alone (`fm5 train --no-qa`) is scored on that file's held-out texts: the file
    comes from fm5_run.json; a QA file (its passages may be training texts) and another split are refused, and a QA
    run is not scored on a document file's split."""
    texts = [f"Text number {i} of the manual, long enough to be a passage of its own here." for i in range(60)]
    doc = tmp_path / "manual.jsonl"
    doc.write_text("".join(json.dumps({"text": t}) + "\n" for t in texts))
    inputs = data.document_inputs(texts, data.Split(0.2, 5))
    run = tmp_path / "docrun"
    run.mkdir()
    (run / "fm5_run.json").write_text(json.dumps({
        "config": {"fm5": {"qa": False}}, "data": {"path": str(doc)},
        "split": {"test_size": 0.2, "seed": 5, "seen_fraction": 0.5, "train_ids": [], "eval_ids": [],
                  **inputs.groups.ids()}}))
    metadata, note = split_of_runs([run], {})
    assert metadata["fm5_document"] == str(doc) and metadata["fm5_split_seed"] == 5
    assert "document file from fm5_run.json" in note
    with pytest.raises(UsageError, match="trained on a document file alone .*without --data"):
        split_of_runs([run], {"fm5_data": str(shared_qa)})
    with pytest.raises(UsageError, match=r"would score \d+ row\(s\) the run trained on"):
        split_of_runs([run], {"fm5_document": str(doc), "fm5_test_size": 0.2, "fm5_split_seed": 6})
    qa_run = _run(tmp_path / "qarun", data.load_qa(shared_qa), 0.3, 7)
    with pytest.raises(UsageError, match="trained with a QA file"):
        split_of_runs([qa_run], {"fm5_document": str(doc)})

"""`fm5 eval` of a training run evaluates on the run's own split (harness_ext.sweep.split_of_runs): no model needed."""

import json

import pytest

from harness_ext import data
from harness_ext.errors import UsageError
from harness_ext.sweep import split_of_runs


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

"""The experiment runners of bench/ (the screening grid, the replication on fresh seeds): what one result line
records, from a report over fake runs and a run folder's provenance, and that the final adapter is evaluated alone."""

import json

import pytest

from conftest import REPO
from fakes import fake_doc_items, fake_mc_questions, write_fake_run


@pytest.fixture
def runner(monkeypatch):
    import importlib

    monkeypatch.syspath_prepend(str(REPO / "bench"))
    return importlib.import_module("knowledge_runs")


def _train_folder(tmp_path):
    train = tmp_path / "train-cell"
    (train / "checkpoint-2").mkdir(parents=True)
    (train / "document").mkdir()
    stages = [{"name": "document", "global_step": 4, "texts": 10, "views": 2, "wall_time_s": 1.0},
              {"name": "qa", "global_step": 2, "rows": 16}]
    (train / "fm5_run.json").write_text(json.dumps({"stages": stages, "decontamination": {
        "study_questions": {"built": 5, "dropped": 1}}}))
    for name in ("adapter_config.json", "adapter_model.safetensors", "fm5_plan.json", "trainer_state.json"):
        (train / name).write_text(name)
    return train


def test_result_line_carries_both_lines_and_the_four_rows(tmp_path, shared_rows, runner):
    from reports.build import build

    base = write_fake_run(tmp_path / "base", {
        "fm5_doc_mc": fake_doc_items(n_passages=100, seed=1),
        "fm5_qa_mc_closed": fake_mc_questions(shared_rows[:100], skill=0.3)})
    final = write_fake_run(tmp_path / "final", {
        "fm5_doc_mc": fake_doc_items(n_passages=100, seed=1, stored=1.0),
        "fm5_qa_mc_closed": fake_mc_questions(shared_rows[:100], skill=0.5)},
        model_args={"pretrained": "fake-model", "peft": str(tmp_path / "final-lora")})
    report = build([str(base), str(final)], str(base))
    line = runner.summary(report, _train_folder(tmp_path))
    stored, usable = line["lines"]
    assert stored.startswith("Stored the document's text (95 %)") and usable.startswith("No evidence")
    assert line["pair"] == report.verdict.sentence
    assert set(line["did"]) == {f"{task} {metric}" for task, metric in runner.ROWS}
    assert line["did"]["fm5_doc_mc margin"]["did"].startswith("+") and line["did"]["fm5_doc_mc margin"]["interval"]
    assert line["did"]["fm5_qa_mc_closed margin"]["holm"] == "declared"  # the usable line's row, not in the family
    assert line["stages"] == [{"name": "document", "global_step": 4, "sequences": None, "rows": None, "texts": 10,
                               "views": 2}, {"name": "qa", "global_step": 2, "sequences": None, "rows": 16,
                                             "texts": None, "views": None}]
    assert line["study_questions"] == {"built": 5, "dropped": 1} and line["transitions"]
    json.dumps(line)  # a JSON line as it stands


def test_the_final_adapter_is_copied_alone_and_each_result_appended(tmp_path, runner, capsys):
    train, final = _train_folder(tmp_path), tmp_path / "final-cell"
    final.mkdir()
    (final / "stale.bin").write_text("from an earlier run")
    runner.copy_final(train, final)
    assert sorted(p.name for p in final.iterdir()) == sorted(runner.ADAPTER_FILES)  # no checkpoint, no stage
    runner.record(tmp_path, {"cell": "a", "status": "ok"})
    runner.record(tmp_path, {"cell": "b", "status": "failed"})
    lines = (tmp_path / "log.txt").read_text().splitlines()
    assert [json.loads(x)["cell"] for x in lines] == ["a", "b"] and capsys.readouterr().out.splitlines() == lines

"""The regression gate on lm-eval-format fixtures written here, and on real lm_eval runs."""

import json
import random
import shutil
import subprocess

import pytest

from conftest import FM5, run_lm_eval
from fakes import fake_mc_questions as _mc_questions
from fakes import fake_questions as _questions
from fakes import write_fake_run
from fm5.cli import main as fm5

TASKS = ("fm5_qa_open", "fm5_qa_closed")


@pytest.fixture(scope="module")
def rows(shared_rows):
    return shared_rows[:45]  # the size of a real FM 5-0 test split


@pytest.fixture(scope="module")
def baseline(tmp_path_factory, rows):
    return write_fake_run(tmp_path_factory.mktemp("gate") / "baseline", {t: _questions(rows) for t in TASKS})


def make(tmp_path, name, rows, **kwargs):
    return write_fake_run(tmp_path / name, {t: _questions(rows, **kwargs) for t in TASKS})


def gate(baseline, candidate, *extra):
    return fm5(["gate", "--baseline", str(baseline), "--candidate", str(candidate), *extra])


def test_identical_runs_pass(baseline, capsys):
    assert gate(baseline, baseline) == 0
    out = capsys.readouterr().out
    assert "verdict: PASS" in out and "FAIL" not in out.replace("verdict", "")


def test_large_drop_fails_on_the_right_rows(tmp_path, baseline, rows, capsys):
    bad = make(tmp_path, "bad", rows, wrong=True)
    assert gate(baseline, bad, "--json", str(tmp_path / "g.json")) == 1
    verdicts = {(r["task"], r["metric"]): r["verdict"] for r in json.loads((tmp_path / "g.json").read_text())["rows"]}
    assert verdicts[("fm5_qa_open", "f1")] == verdicts[("fm5_qa_closed", "f1")] == "fail"
    assert verdicts[("fm5_qa_open", "perplexity")] == "pass"  # NLLs were left alike
    assert "verdict: FAIL" in capsys.readouterr().out


def test_noise_between_seeds_passes(tmp_path, baseline, rows):
    for seed in (1, 2, 3):
        assert gate(baseline, make(tmp_path, f"seed{seed}", rows, seed=seed)) == 0


def test_improvement_passes(tmp_path, baseline, rows):
    assert gate(baseline, make(tmp_path, "better", rows, keep=0.95, nll_per_token=1.0)) == 0


def test_perplexity_direction(tmp_path, baseline, rows):
    worse = make(tmp_path, "worse_ppl", rows, nll_per_token=2.0)  # same answers, higher perplexity
    assert gate(baseline, worse, "--json", str(tmp_path / "w.json")) == 1
    failed = [(r["task"], r["metric"]) for r in json.loads((tmp_path / "w.json").read_text())["rows"]
              if r["verdict"] == "fail"]
    assert failed == [("fm5_qa_open", "perplexity"), ("fm5_qa_closed", "perplexity")]
    assert gate(baseline, make(tmp_path, "better_ppl", rows, nll_per_token=1.0)) == 0


def test_tolerance_config_can_excuse_a_drop(tmp_path, baseline, rows):
    worse = make(tmp_path, "worse_ppl", rows, nll_per_token=2.0)
    config = tmp_path / "gate.yaml"
    config.write_text("tolerance:\n  perplexity: {relative: 0.8}\n")
    assert gate(baseline, worse, "--config", str(config)) == 0


def test_outputs_are_deterministic_and_valid(tmp_path, baseline, rows):
    from junitparser import JUnitXml

    bad = make(tmp_path, "bad", rows, wrong=True)
    for i in (1, 2):
        gate(baseline, bad, "--json", str(tmp_path / f"{i}.json"), "--junit", str(tmp_path / f"{i}.xml"),
             "--markdown", str(tmp_path / "summary.md"))
    assert (tmp_path / "1.json").read_bytes() == (tmp_path / "2.json").read_bytes()
    assert (tmp_path / "1.xml").read_bytes() == (tmp_path / "2.xml").read_bytes()
    xml = JUnitXml.fromfile(str(tmp_path / "1.xml"))
    cases = [case for suite in xml for case in suite]
    assert len(cases) == 12
    failing = {(c.classname, c.name) for c in cases if not c.is_passed}
    assert ("fm5_gate.fm5_qa_open", "f1") in failing and ("fm5_gate.fm5_qa_open", "perplexity") not in failing
    markdown = (tmp_path / "summary.md").read_text()
    assert markdown.count("### fm5 gate: **FAIL**") == 2 and "| fm5_qa_closed | f1 |" in markdown


def test_mde_is_reported(baseline, capsys):
    gate(baseline, baseline)
    assert "MDE" in capsys.readouterr().out


# ------------------------------------------------------------------------------------------ fail closed


def _expect_2(capsys, baseline, candidate, words, *extra):
    assert gate(baseline, candidate, *extra) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and words in err, err


def test_missing_task(tmp_path, baseline, rows, capsys):
    one = write_fake_run(tmp_path / "one", {"fm5_qa_open": _questions(rows)})
    _expect_2(capsys, baseline, one, "task fm5_qa_closed missing")


def test_missing_metric(tmp_path, baseline, capsys):
    cand = tmp_path / "cand"
    shutil.copytree(baseline, cand)
    (res_file,) = cand.glob("results_*.json")
    res = json.loads(res_file.read_text())
    del res["results"]["fm5_qa_open"]["f1,none"]
    res_file.write_text(json.dumps(res))
    _expect_2(capsys, baseline, cand, "lacks metric(s) f1")


def test_different_question_sets_unless_allow_subset(tmp_path, baseline, rows, capsys):
    other = write_fake_run(tmp_path / "other", {t: _questions(rows[5:]) for t in TASKS})
    _expect_2(capsys, baseline, other, "different questions")
    assert gate(baseline, other, "--allow-subset") == 0
    assert "comparing the 40 questions both runs answered" in capsys.readouterr().out


def test_limit_run_is_refused_unless_allowed(tmp_path, baseline, rows, capsys):
    limited = write_fake_run(tmp_path / "limited", {t: _questions(rows) for t in TASKS}, limit=45, n_original=50)
    _expect_2(capsys, baseline, limited, "--limit run")
    config = tmp_path / "gate.yaml"
    config.write_text("allow_limit: true\n")
    assert gate(baseline, limited, "--config", str(config)) == 0


def test_different_task_versions(tmp_path, rows, baseline, capsys):
    v2 = write_fake_run(tmp_path / "v2", {t: _questions(rows) for t in TASKS}, version=2.0)
    _expect_2(capsys, baseline, v2, "task versions differ")


def test_different_bertscore_backbones(tmp_path, rows, baseline, capsys):
    other = write_fake_run(tmp_path / "rb", {t: _questions(rows) for t in TASKS}, backbone="roberta-large:L17")
    _expect_2(capsys, baseline, other, "BERTScore backbones differ")


def test_unreadable_and_missing_files(tmp_path, baseline, capsys):
    broken = tmp_path / "broken"
    shutil.copytree(baseline, broken)
    next(broken.glob("results_*.json")).write_text("{not json")
    _expect_2(capsys, baseline, broken, "invalid JSON")
    nosamples = tmp_path / "nosamples"
    shutil.copytree(baseline, nosamples)
    for f in nosamples.glob("samples_*"):
        f.unlink()
    _expect_2(capsys, baseline, nosamples, "--log_samples")
    empty = tmp_path / "empty"
    empty.mkdir()
    _expect_2(capsys, baseline, empty, "no lm-eval results")
    bad_cfg = tmp_path / "bad.yaml"
    bad_cfg.write_text("tolerances: {}\n")
    _expect_2(capsys, baseline, baseline, "unknown gate config keys", "--config", str(bad_cfg))


def test_help_states_the_rule():
    out = subprocess.run([*FM5, "gate", "--help"], capture_output=True, text=True)
    assert out.returncode == 0 and "whole interval lies beyond" in out.stdout


# ------------------------------------------------------------------------------------------- real runs


@pytest.mark.slow
def test_real_runs_unchanged_passes_truncated_fails(tmp_path, base_run, small_qa, smollm2_gguf, capsys):
    """The shared stock run of the base against itself passes; against a real run of the same model whose answers
    are cut to 2 tokens, F1 fails on both QA tasks."""
    pretrained, gguf = smollm2_gguf
    args = f"pretrained={pretrained},gguf_file={gguf}"
    broken = run_lm_eval(tmp_path / "broken", small_qa, args, "--gen_kwargs", "max_gen_toks=2", limit=4)
    config = tmp_path / "gate.yaml"
    config.write_text("allow_limit: true\n")

    assert gate(base_run, base_run, "--config", str(config)) == 0, capsys.readouterr()
    assert gate(base_run, broken, "--config", str(config), "--json", str(tmp_path / "real.json")) == 1, \
        capsys.readouterr()
    rows = json.loads((tmp_path / "real.json").read_text())["rows"]
    assert {r["task"] for r in rows if r["metric"] == "f1" and r["verdict"] == "fail"} == set(TASKS)


def test_example_gate_config_is_the_default():
    from conftest import REPO
    from harness_ext.gate import DEFAULT_CONFIG, load_config

    assert load_config(str(REPO / "examples" / "gate.yaml")) == DEFAULT_CONFIG


# ------------------------------------------------------------------------------- the multiple-choice probe

MC_TASKS = ("fm5_qa_mc_open", "fm5_qa_mc_closed")


def _mc_run(tmp_path, name, rows, **kwargs):
    return write_fake_run(tmp_path / name, {**{t: _questions(rows) for t in TASKS},
                                            **{t: _mc_questions(rows, **kwargs) for t in MC_TASKS}})


def test_example_mc_config_gates_the_probe(tmp_path, rows, capsys):
    from conftest import REPO

    config = str(REPO / "examples" / "gate_mc.yaml")
    base = _mc_run(tmp_path, "base", rows)
    assert gate(base, base, "--config", config) == 0
    capsys.readouterr()
    worse = _mc_run(tmp_path, "worse", rows, skill=0.0)  # the gold no longer stands out: margin and acc fall
    assert gate(base, worse, "--config", config, "--json", str(tmp_path / "mc.json")) == 1
    out = json.loads((tmp_path / "mc.json").read_text())["rows"]
    by = {(r["task"], r["metric"]): r for r in out}
    assert by[("fm5_qa_mc_closed", "margin")]["verdict"] == "fail"
    assert by[("fm5_qa_mc_closed", "margin")]["tolerance"] == 0.1
    assert by[("fm5_qa_mc_open", "acc")]["tolerance"] == 0.08  # task_tolerance of gate_mc.yaml
    assert {m for t, m in by if t.startswith("fm5_qa_mc_")} == {"acc", "acc_norm", "acc_pmi", "margin",
                                                                "margin seen-unseen (knowledge)"}
    assert {m for t, m in by if t == "fm5_qa_open"} == {"perplexity", "exact_match", "f1", "bertscore_precision",
                                                        "bertscore_recall", "bertscore_f1"}
    assert all(r["higher_is_better"] for r in out if r["task"].startswith("fm5_qa_mc_"))
    assert gate(base, _mc_run(tmp_path, "better", rows, skill=2.0), "--config", config) == 0


def test_knowledge_rule(tmp_path, shared_rows, capsys):
    """gate_mc.yaml's knowledge rule: the seen-minus-unseen gap in closed-book margin must not shrink."""
    from conftest import REPO

    config = str(REPO / "examples" / "gate_mc.yaml")
    rows = shared_rows[:50]
    learned = _mc_run(tmp_path, "learned", rows, knowledge=1.0)
    same = _mc_run(tmp_path, "same", rows, seed=0, knowledge=1.0)
    assert gate(learned, same, "--config", config, "--json", str(tmp_path / "k.json")) == 0
    row = next(r for r in json.loads((tmp_path / "k.json").read_text())["rows"] if "knowledge" in r["metric"])
    assert row["metric"] == "margin seen-unseen (knowledge)" and row["delta"] == pytest.approx(0, abs=1e-9)
    assert row["baseline"] > 0.5 and row["verdict"] == "pass"
    forgot = _mc_run(tmp_path, "forgot", rows, knowledge=0.0)  # the style stays, the knowledge is gone
    assert gate(learned, forgot, "--config", config, "--json", str(tmp_path / "f.json")) == 1
    rows_out = json.loads((tmp_path / "f.json").read_text())["rows"]
    failed = {(r["task"], r["metric"]) for r in rows_out if r["verdict"] == "fail"}
    assert ("fm5_qa_mc_closed", "margin seen-unseen (knowledge)") in failed
    capsys.readouterr()
    old = _mc_run(tmp_path, "old", rows, knowledge=1.0, groups=False)
    _expect_2(capsys, learned, old, "no seen/unseen record", "--config", config)
    default = gate(learned, forgot)  # the built-in config has no knowledge rule
    assert "seen-unseen" not in capsys.readouterr().out and default in (0, 1)


def test_runs_whose_groups_differ_exit_2(tmp_path, shared_rows, capsys):
    """The candidate's seen/unseen record must match the baseline's: a candidate evaluated on another split's
    groups would mix them in every diff-in-diff."""
    from conftest import REPO
    from reports.build import build

    rows = shared_rows[:50]
    base = _mc_run(tmp_path, "base", rows)
    swapped = _mc_questions(rows, knowledge=1.0)
    for q in swapped[:4]:
        q["group"] = "unseen" if q["group"] == "seen" else "seen"
    other = write_fake_run(tmp_path / "other", {**{t: _questions(rows) for t in TASKS},
                                                **{t: swapped for t in MC_TASKS}})
    _expect_2(capsys, base, other, "seen/unseen groups differ on 4 question(s)", "--config",
              str(REPO / "examples" / "gate_mc.yaml"))
    report = build([str(base), str(other)])
    assert any("groups differ from the baseline's on 4 question(s)" in n for n in report.knowledge_notes)


def test_probe_task_missing_from_a_qa_only_run(tmp_path, baseline, rows, capsys):
    from conftest import REPO

    base = _mc_run(tmp_path, "base", rows)
    _expect_2(capsys, base, baseline, "task fm5_qa_mc_open missing", "--config", str(REPO / "examples" / "gate_mc.yaml"))


def test_a_gate_config_that_is_not_a_mapping(tmp_path, baseline, capsys):
    for text in ("5\n", "[tolerance]\n", "just text\n"):
        config = tmp_path / "g.yaml"
        config.write_text(text)
        _expect_2(capsys, baseline, baseline, "a gate config is a mapping", "--config", str(config))


def test_model_args_recorded_as_json_or_key_value(tmp_path, rows):
    from harness_ext.results import load_run

    for i, args in enumerate(('{"pretrained": "m", "peft": "/x/my-lora", "chat_template_args": {"a": 1}}',
                              "pretrained=m,peft=/x/my-lora,dtype=float32")):
        run = load_run(write_fake_run(tmp_path / f"r{i}", {"fm5_qa_open": _questions(rows[:3])}, model_args=args))
        assert run.label == "my-lora" and run.model_args["pretrained"] == "m"

"""The HTML report: computed numbers, escaping, bad input, and a real browser."""

import json
import os
import re
import shutil
import subprocess

import numpy as np
import pytest

from browser import chromium, load_page
from fakes import fake_mc_questions as _mc_questions
from fakes import fake_questions as _questions
from fakes import write_fake_run
from conftest import FM5
from harness_ext import metrics
from harness_ext.errors import UsageError
from harness_ext.files import write_atomic
from harness_ext.stats import DEFAULT_RESAMPLES, DEFAULT_SEED
from reports import build as B

TASKS = ("fm5_qa_open", "fm5_qa_closed")
EVIL = "<script>document.title='pwned'</script><img src=x onerror=alert(1)>"


def _qs(rows, keep, seed, nll=1.5, evil=False):
    rng = np.random.default_rng(seed)
    out = []
    for i, row in enumerate(rows):
        words = row["answer"].split()
        pred = " ".join(w for w in words if rng.random() < keep) or words[0]
        if evil and i == 0:
            pred = EVIL
        tokens = max(len(words), 1)
        out.append({"id": row["id"], "question": row["question"], "answer": row["answer"], "prediction": pred,
                    "nll": tokens * nll * rng.uniform(0.9, 1.1), "tokens": tokens})
    return out


@pytest.fixture(scope="module")
def fixture_runs(tmp_path_factory, shared_rows):
    root = tmp_path_factory.mktemp("report")
    rows = shared_rows[:20]
    base = write_fake_run(root / "evals" / "base", {t: _qs(rows, 0.3, 0) for t in TASKS})
    ckpt = write_fake_run(root / "evals" / "run__checkpoint-5", {t: _qs(rows, 0.5, 1, 1.2) for t in TASKS},
                          model_args={"pretrained": "fake-model", "peft": str(root / "run" / "checkpoint-5")})
    final = write_fake_run(root / "evals" / "run", {t: _qs(rows, 0.7, 2, 1.0, evil=True) for t in TASKS},
                           model_args={"pretrained": "fake-model", "peft": str(root / "run")})
    training = root / "run"
    training.mkdir()
    (training / "trainer_state.json").write_text(json.dumps({"log_history": [
        {"step": 1, "loss": 2.5}, {"step": 5, "loss": 1.9}, {"step": 5, "eval_loss": 2.0},
        {"step": 10, "loss": 1.4}, {"step": 10, "eval_loss": 1.7}]}))
    (training / "fm5_run.json").write_text(json.dumps({
        "base_model": {"model_name_or_path": "fake-model", "gguf_file": None}, "adapter": {"r": 8, "lora_alpha": 16},
        "data": {"sha256": "ab" * 32}, "split": {"train_ids": [rows[3]["id"], "not-evaluated"], "test_ids": []},
        "git_commit": "deadbeef", "wall_time_s": 12.0}))
    return root, base, ckpt, final, training


@pytest.fixture(scope="module")
def report(fixture_runs):
    root, _, _, _, training = fixture_runs
    return B.build([str(root / "evals"), str(training)])


def test_models_ordered_base_checkpoints_final(report):
    assert report.models == ["fake-model", "run/checkpoint-5", "run"]
    assert [line.model for line in report.summary[0].lines] == report.models


def _direct_bootstrap(base, cand, metric):
    """An independent bootstrap: the same index draws, recomputed with plain Python per resample."""
    rng = np.random.default_rng(DEFAULT_SEED)
    idx = rng.integers(0, len(base), size=(DEFAULT_RESAMPLES, len(base)))
    deltas = []
    for draw in idx:
        if metric == "perplexity":
            value = lambda qs: metrics.corpus_perplexity([(qs[i]["nll"], qs[i]["tokens"]) for i in draw])
        else:
            value = lambda qs: sum(metrics.f1(qs[i]["prediction"], qs[i]["answer"]) for i in draw) / len(draw)
        deltas.append(value(cand) - value(base))
    return np.percentile(deltas, [2.5, 97.5])


@pytest.mark.parametrize("metric", ["f1", "perplexity"])
def test_deltas_and_intervals_match_a_direct_bootstrap(report, fixture_runs, metric):
    from harness_ext.results import load_run

    _, base_dir, _, final_dir, _ = fixture_runs
    load = lambda d: sorted(({"id": q.id, "prediction": q.prediction, "answer": q.answer, "nll": q.nll,
                              "tokens": q.tokens} for q in load_run(d).tasks["fm5_qa_closed"].questions),
                            key=lambda q: q["id"])
    base, final = load(base_dir), load(final_dir)
    low, high = _direct_bootstrap(base, final, metric)
    table = next(t for t in report.summary if t.task == "fm5_qa_closed")
    col = [m for m, _ in table.metrics].index(metric)
    cell = next(line for line in table.lines if line.model == "run").cells[col]
    from reports.view import fmt_delta as fmt
    assert cell.interval == f"[{fmt(metric, low)}, {fmt(metric, high)}]"
    if metric == "f1":
        direct = np.mean([metrics.f1(q["prediction"], q["answer"]) for q in final]) - \
                 np.mean([metrics.f1(q["prediction"], q["answer"]) for q in base])
    else:
        ppl = lambda qs: metrics.corpus_perplexity([(q["nll"], q["tokens"]) for q in qs])
        direct = ppl(final) - ppl(base)
    assert cell.delta.text.split()[0] == fmt(metric, direct)


def test_knowledge_view_and_curves(report):
    assert {k.model for k in report.knowledge} == {"run/checkpoint-5", "run"}
    f1_row = next(k for k in report.knowledge if k.model == "run" and k.metric == "f1")
    assert f1_row.gain.css == "up" and f1_row.open_model != "n/a"
    titles = [c.title for c in report.charts]
    assert "Loss by step: run" in titles and "f1 by checkpoint" in titles
    loss = next(c for c in report.charts if c.title.startswith("Loss"))
    assert [s.name for s in loss.series] == ["train loss", "eval loss"] and len(loss.series[0].dots) == 3


def test_checkpoint_curves_keep_training_runs_apart(fixture_runs, shared_rows, tmp_path):
    root, *_ = fixture_runs
    other = tmp_path / "evals"
    for name in ("base", "run__checkpoint-5"):  # the base and one run's checkpoint, and another run's checkpoint
        shutil.copytree(root / "evals" / name, other / name)
    write_fake_run(other / "second__checkpoint-7", {t: _qs(shared_rows[:20], 0.6, 3) for t in TASKS},
                   model_args={"pretrained": "fake-model", "peft": str(tmp_path / "second" / "checkpoint-7")})
    chart = next(c for c in B.build([str(other)]).charts if c.title == "f1 by checkpoint")
    steps = {s.name: [d[2].split(",")[0].rsplit(" ", 1)[1] for d in s.dots] for s in chart.series}
    assert steps["run: fm5_qa_closed"] == ["0", "5"] and steps["second: fm5_qa_closed"] == ["0", "7"]


def test_contamination_and_flips(report, shared_rows):
    assert any(w.startswith("CONTAMINATION, question probes (fm5_qa_*): 1 evaluated item(s)")
               and shared_rows[3]["id"] in w for w in report.warnings)
    flips = {a.flip.text for q in report.questions for a in q.answers[1:]}
    assert "wrong → right" in flips


def test_near_duplicate_training_rows_are_flagged(tmp_path, shared_qa, shared_rows):
    """An adapter trained before the decontamination rule (on every training-side row of the 10 % split): the report
    applies the rule to its training rows and the evaluated questions, and names the pairs."""
    from harness_ext.data import Split

    groups = Split().groups(shared_rows)
    training = tmp_path / "old-run"
    training.mkdir()
    (training / "fm5_run.json").write_text(json.dumps({"data": {"path": str(shared_qa)}, "split": {
        "train_ids": [r["id"] for r in groups.train], **groups.ids()}}))
    evaluated = [r for r in groups.test if r["id"] in ("fm5-0393", "fm5-0200", "fm5-0031", "fm5-0019")]
    base = write_fake_run(tmp_path / "base", {"fm5_qa_closed": _questions(evaluated)})
    write_fake_run(tmp_path / "old", {"fm5_qa_closed": _questions(evaluated, seed=1)},
                   model_args={"pretrained": "fake-model", "peft": str(training)})
    report = B.build([str(base), str(tmp_path / "old")])
    (warning,) = [w for w in report.warnings if "decontamination.near_duplicates" in w]
    assert warning.startswith("CONTAMINATION, question probes (fm5_qa_*): ") and "of old-run break the rule" in warning
    assert "fm5-0061 ~ fm5-0031" in warning and "fm5-0085 ~ fm5-0393" in warning  # the first three, in file order
    # also fm5-0084 ~ fm5-0393, fm5-0152 and fm5-0221 ~ fm5-0019, fm5-0316 and others ~ fm5-0200
    assert int(warning.split("(fm5_qa_*): ")[1].split()[0]) >= 6


def test_escaping_and_offline_html(report, tmp_path):
    html = B.render_html(report)
    assert EVIL not in html and "&lt;script&gt;document.title=&#39;pwned&#39;&lt;/script&gt;" in html
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", html)  # no CDN, nothing fetched at view time


def test_cli_writes_html_and_markdown(fixture_runs, tmp_path):
    root, *_ , training = fixture_runs
    out, md = tmp_path / "r.html", tmp_path / "r.md"
    proc = subprocess.run([*FM5, "report", str(root / "evals"), str(training),
                           "-o", str(out), "--markdown", str(md)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert out.read_text().startswith("<!doctype html>") and "CONTAMINATION" in proc.stderr
    text = md.read_text()
    assert "**fm5_qa_closed**" in text and "| run |" in text


@pytest.mark.slow
def test_report_on_a_real_lm_eval_run(base_run, tmp_path):
    report = B.build([str(base_run)])
    assert report.models and report.questions and not report.knowledge  # one model: no comparison
    assert len(report.questions) == 8  # 4 questions x 2 tasks
    write_atomic(tmp_path / "real.html", B.render_html(report))


# ------------------------------------------------------------------------------------------------ bad input


def _report(*args):
    return subprocess.run([*FM5, "report", *map(str, args)],
                          capture_output=True, text=True)


def test_folder_without_results_exits_2_and_keeps_old_output(tmp_path):
    (tmp_path / "empty").mkdir()
    out = tmp_path / "r.html"
    out.write_text("old report")
    proc = _report(tmp_path / "empty", "-o", out)
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1 and "no lm-eval results" in proc.stderr
    assert out.read_text() == "old report"


def test_unreadable_json_exits_2(tmp_path, fixture_runs):
    import shutil

    bad = tmp_path / "bad"
    shutil.copytree(fixture_runs[1], bad)
    next(bad.glob("results_*.json")).write_text('{"results": ')
    proc = _report(bad, "-o", tmp_path / "r.html")
    assert proc.returncode == 2 and "invalid JSON" in proc.stderr and not (tmp_path / "r.html").exists()


def test_missing_samples_and_version_mismatch_are_reported(tmp_path, shared_rows):
    rows = shared_rows[:10]
    write_fake_run(tmp_path / "evals" / "a", {t: _qs(rows, 0.3, 0) for t in TASKS})
    write_fake_run(tmp_path / "evals" / "b", {t: _qs(rows, 0.6, 1) for t in TASKS}, samples=False, version=2.0,
                   model_args={"pretrained": "other"})
    proc = _report(tmp_path / "evals", "-o", tmp_path / "r.html")
    assert proc.returncode == 0, proc.stderr
    assert "no samples file" in proc.stderr and "task versions differ" in proc.stderr
    html = (tmp_path / "r.html").read_text()
    assert "Missing samples" in html and "no interval" in html


@pytest.mark.slow
@pytest.mark.skipif(chromium() is None, reason="Debian chromium is not installed (.ci/run installs it)")
def test_real_browser_loads_report_offline(report, tmp_path):
    page = tmp_path / "report.html"
    write_atomic(page, B.render_html(report))
    shot = tmp_path / "report.png"
    result = load_page(page.as_uri(), shot)
    assert result["title"] == "FM 5-0 fine-tuning report"  # the injected script did not run
    assert result["errors"] == [], result["errors"]
    assert [u for u in result["requests"] if u != page.as_uri()] == []  # the injected <img> did not load
    assert result["question_rows"] == len(report.questions)
    assert result["overflow"] <= 0, f"a table runs {result['overflow']} px past the 1400 px window"
    assert shot.stat().st_size > 10_000 and shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    if os.environ.get("FM5_KEEP_SCREENSHOT"):
        shot.replace(os.environ["FM5_KEEP_SCREENSHOT"])


def test_probe_tables_and_knowledge_rows(tmp_path, shared_rows):
    """A report over runs with the probe: its metrics in the summary, the knowledge view and the per-question table."""

    rows = shared_rows[:30]
    base = write_fake_run(tmp_path / "base", {"fm5_qa_mc_closed": _mc_questions(rows, skill=0.2),
                                              "fm5_qa_mc_open": _mc_questions(rows, skill=2.0)})
    tuned = write_fake_run(tmp_path / "tuned", {"fm5_qa_mc_closed": _mc_questions(rows, skill=1.5),
                                                "fm5_qa_mc_open": _mc_questions(rows, skill=2.0)},
                           model_args={"pretrained": "fake-model", "peft": str(tmp_path / "adapter")})
    report = B.build([str(base), str(tuned)])
    table = next(t for t in report.summary if t.task == "fm5_qa_mc_closed")
    assert [m for m, _ in table.metrics] == ["acc", "acc_norm", "acc_pmi", "margin"]
    margin = next(k for k in report.knowledge if k.metric == "margin")
    assert margin.task == "fm5_qa_mc_closed" and margin.gain.css == "up" and margin.open_model != "n/a"
    assert [k.metric for k in report.knowledge][:4] == ["margin", "acc_pmi", "acc", "acc_norm"]
    assert len(report.choices) == 60 and not report.questions
    pick = report.choices[0].picks[1]
    assert pick.text[0] in "ABCD" and pick.text[1] == ":" and pick.correct.text in ("✓", "✗")
    html = B.render_html(report)
    assert 'id="mc-questions"' in html and "fm5_qa_mc_closed" in html


def test_knowledge_verdict_from_the_control_group(tmp_path, shared_rows):

    rows = shared_rows[:100]  # 50 + 50: at least claims.MIN_PER_GROUP per group
    base = write_fake_run(tmp_path / "base", {"fm5_qa_mc_closed": _mc_questions(rows, skill=0.3),
                                              "fm5_qa_mc_open": _mc_questions(rows, skill=2.0)})
    learned = write_fake_run(tmp_path / "learned", {"fm5_qa_mc_closed": _mc_questions(rows, skill=0.5, knowledge=1.5),
                                                    "fm5_qa_mc_open": _mc_questions(rows, skill=2.0)},
                             model_args={"pretrained": "fake-model", "peft": str(tmp_path / "learned-lora")})
    style = write_fake_run(tmp_path / "style", {"fm5_qa_mc_closed": _mc_questions(rows, skill=0.8),
                                                "fm5_qa_mc_open": _mc_questions(rows, skill=2.0)},
                           model_args={"pretrained": "fake-model", "peft": str(tmp_path / "style-lora")})
    report = B.build([str(base), str(learned), str(style)])
    # one declared comparison (the default: the final adapter, closed-book margin); the first final adapter here
    v = report.verdict
    assert (v.model, v.comparison, v.css) == ("learned-lora", "final:fm5_qa_mc_closed:margin", "up")
    assert v.sentence.startswith("Learned the document (95 %): fm5_qa_mc_closed margin: seen questions +")
    assert v.source.startswith("the default")
    rows = {(d.model, d.metric): d for d in report.did}
    assert rows["learned-lora", "margin"].role == "declared" and rows["learned-lora", "margin"].p_holm == "declared"
    style_margin = rows["style-lora", "margin"]  # both groups gained alike: exploratory, adjusted, not flagged
    assert style_margin.role == "exploratory" and float(style_margin.p_holm) >= float(style_margin.p)
    assert style_margin.did.css == "ns"
    assert {d.metric for d in report.did} >= {"margin", "acc", "acc_pmi"}
    did = rows["learned-lora", "margin"]
    assert did.did.css == "up" and did.interval.startswith("[+")
    assert {c.metric for c in report.closure} == {"margin", "acc"}
    groups = [t.group for t in report.transitions if t.model == "learned-lora"]
    t = next(t for t in report.transitions if t.model == "learned-lora" and t.group == "seen")
    assert groups == ["seen", "unseen"] and sum(int(x) for x in (t.learned, t.forgotten, t.still_known,
                                                               t.still_unknown)) == 50
    assert [f.title for f in report.forest][0] == "fm5_qa_mc_closed margin: seen minus unseen gain"
    assert [r.label for r in report.forest[0].rows] == ["learned-lora (declared)", "style-lora"]
    html = B.render_html(report)
    assert 'id="did"' in html and "Learned the document" in html and "Forest plot" in html
    assert html.count('<p class="verdict') == 1  # the declared comparison only
    assert any(line.startswith("- **learned-lora** (final:fm5_qa_mc_closed:margin, the default")
               for line in B.render_markdown(report).splitlines()[:8])
    # a report may name another comparison, and says it was not declared before training
    other = B.build([str(base), str(learned), str(style)], primary_text="final:fm5_qa_mc_closed:acc")
    assert other.verdict.comparison == "final:fm5_qa_mc_closed:acc" and "not declared before" in other.verdict.source


def test_the_verdict_follows_the_comparison_declared_before_training(tmp_path, shared_rows):
    rows = shared_rows[:50]
    training = tmp_path / "run"
    training.mkdir()
    (training / "fm5_run.json").write_text(json.dumps({"primary": "final:fm5_qa_mc_closed:acc_pmi",
                                                       "declared_at": "2026-12-01T10:00:00+00:00"}))
    base = write_fake_run(tmp_path / "evals" / "base", {"fm5_qa_mc_closed": _mc_questions(rows, skill=0.3)})
    write_fake_run(tmp_path / "evals" / "run", {"fm5_qa_mc_closed": _mc_questions(rows, skill=0.5, knowledge=1.5)},
                   model_args={"pretrained": "fake-model", "peft": str(training)})
    report = B.build([str(tmp_path / "evals")], str(base))
    assert report.verdict.comparison == "final:fm5_qa_mc_closed:acc_pmi"
    assert report.verdict.source == "declared before training (run, 2026-12-01T10:00:00+00:00)"
    assert "fm5_qa_mc_closed acc_pmi" in report.verdict.sentence
    bad = B.build  # an unusable declaration is one line naming the file's field
    (training / "fm5_run.json").write_text(json.dumps({"primary": "last:fm5_qa_mc_closed:margin"}))
    with pytest.raises(UsageError, match="fm5_run.json field primary: model must be final, document or"):
        bad([str(tmp_path / "evals")], str(base))


def test_per_question_tables_fit_the_page_and_show_the_group(tmp_path, shared_rows):
    rows = shared_rows[:6]
    models = {f"m{i}": write_fake_run(tmp_path / f"m{i}", {"fm5_qa_closed": _questions(rows, seed=i),
                                                           "fm5_qa_mc_closed": _mc_questions(rows, seed=i)},
                                      model_args={"pretrained": "fake-model", "peft": str(tmp_path / f"lora{i}")})
              for i in range(5)}
    report = B.build([str(p) for p in models.values()])
    assert {q.group for q in report.choices} == {"seen", "unseen"}
    html = B.render_html(report)
    assert "<td>unseen</td>" in html
    head = html[html.index('<table id="questions"'):html.index("</thead>", html.index('<table id="questions"'))]
    assert head.count("</th>") == 5 + 5  # task, id, group, question, gold + one column per model


def test_runs_without_the_control_group_get_a_note(tmp_path, shared_rows):

    rows = shared_rows[:20]
    base = write_fake_run(tmp_path / "base", {"fm5_qa_mc_closed": _mc_questions(rows, groups=False)})
    other = write_fake_run(tmp_path / "other", {"fm5_qa_mc_closed": _mc_questions(rows, skill=2.0, groups=False)},
                           model_args={"pretrained": "fake-model", "peft": str(tmp_path / "x")})
    report = B.build([str(base), str(other)])
    assert not report.did and report.verdict.sentence.startswith("No verdict")
    assert any("No seen/unseen record" in n for n in report.knowledge_notes)
    B.render_html(report)


@pytest.fixture(scope="module")
def two_probe_report(tmp_path_factory, shared_rows):
    """Base, a document-stage adapter and a final adapter on both probes (50 + 50 items each): the first screen has
    one figure per probe."""
    from fakes import fake_doc_items

    root, rows = tmp_path_factory.mktemp("first_screen"), shared_rows[:100]
    base = write_fake_run(root / "base", {"fm5_doc_mc": fake_doc_items(100, seed=1),
                                          "fm5_qa_mc_closed": _mc_questions(rows, skill=0.3)})
    doc = write_fake_run(root / "doc", {"fm5_doc_mc": fake_doc_items(100, seed=2, stored=1.0),
                                        "fm5_qa_mc_closed": _mc_questions(rows, seed=1, skill=0.5, knowledge=0.3)},
                         model_args={"pretrained": "fake-model", "peft": str(root / "run" / "document")})
    final = write_fake_run(root / "final", {"fm5_doc_mc": fake_doc_items(100, seed=3, stored=0.8),
                                            "fm5_qa_mc_closed": _mc_questions(rows, seed=2, skill=0.5)},
                           model_args={"pretrained": "fake-model", "peft": str(root / "run")})
    return B.build([str(base), str(doc), str(final)])


def test_first_screen_shows_each_models_seen_and_unseen_change_with_the_verdicts_numbers(two_probe_report):
    report = two_probe_report
    assert [g.title for g in report.gains] == ["Stored? The continuation probe: fm5_doc_mc margin",
                                               "Usable? The question probe: fm5_qa_mc_closed margin"]
    did = {(d.model, d.task): d for d in report.did if d.metric == "margin"}
    for figure, task in zip(report.gains, ("fm5_doc_mc", "fm5_qa_mc_closed")):
        assert [m.label for m in figure.models] == ["run/document", "run"]
        for model in figure.models:
            seen, unseen = model.rows
            assert (seen.group, unseen.group) == ("seen", "unseen")
            # the figure prints the numbers of the diff-in-diff table (the verdict's tests), interval included
            assert (seen.value, unseen.value) == (did[model.label, task].seen_gain, did[model.label, task].unseen_gain)
            assert float(seen.x_low) <= float(seen.x) <= float(seen.x_high)
    stored = report.gains[0].models[0].rows[0]
    assert float(stored.x) > float(report.gains[0].zero_x)  # the stored gain is drawn right of zero
    html = B.render_html(report)
    assert html.index('id="first-screen"') < html.index('<p class="verdict')


@pytest.mark.slow
@pytest.mark.skipif(chromium() is None, reason="Debian chromium is not installed (.ci/run installs it)")
def test_first_screen_renders_in_a_real_browser(two_probe_report, tmp_path):
    from PIL import Image

    page = tmp_path / "report.html"
    write_atomic(page, B.render_html(two_probe_report))
    shot = tmp_path / "report.png"
    result = load_page(page.as_uri(), shot, evaluate={
        "boxes": "Array.from(document.querySelectorAll('#first-screen svg'), s => {const r = s.getBoundingClientRect();"
                 " return [r.left, r.top, r.right, r.bottom]})",
        "texts": "Array.from(document.querySelectorAll('#first-screen svg text'), t => t.textContent)",
        "images": "document.querySelectorAll('#first-screen img, #first-screen image').length",
        "verdict_top": "document.querySelector('p.verdict').getBoundingClientRect().top",
    })
    assert result["errors"] == [] and result["requests"] == [page.as_uri()]
    values = result["values"]
    (l1, t1, r1, b1), (l2, t2, r2, b2) = values["boxes"]
    assert t1 == t2 and r1 <= l2 and r2 <= 1400  # side by side, inside a 1,400 px window
    assert max(b1, b2) < values["verdict_top"] < 1000  # above the declared sentence, on the first screen
    texts = values["texts"]  # every label is text, not a picture of text
    assert values["images"] == 0 and {"run/document", "run", "seen", "unseen"} <= set(texts)
    assert any(t.startswith("seen: read in training") for t in texts)
    assert sum(t.count("[") for t in texts) == 8  # 2 figures x 2 models x (seen, unseen): value [low, high]
    image = Image.open(shot).convert("RGB")
    for left, top, right, bottom in values["boxes"]:
        raw = image.crop((int(left), int(top), int(right), int(bottom))).tobytes()
        pixels = [raw[i:i + 3] for i in range(0, len(raw), 3)]
        for colour in ((0x1f, 0x5f, 0xbf), (0xd4, 0x59, 0x0b)):  # the seen and the unseen strokes were drawn
            assert sum(max(abs(a - b) for a, b in zip(p, colour)) < 40 for p in pixels) > 20

"""The pull-request comment (reports/comment.py, `fm5 report --comment`) and the gate's outputs it reads: the
decision first, failing metrics only, the verdict lines, escaped labels, one marker, a clean cut under GitHub's
limit."""

import json

import pytest
from markdown_it import MarkdownIt

from fakes import fake_questions as _questions
from fakes import write_fake_run
from fm5.cli import main as fm5
from harness_ext.errors import UsageError
from reports import comment as C

TASKS = ("fm5_qa_open", "fm5_qa_closed")
EVIL = "<!-- fm5-gate --> **pwned** [x](https://evil.example) @octocat"


@pytest.fixture(scope="module")
def runs(tmp_path_factory, shared_rows):
    """A baseline, a candidate that is worse on F1 (its folder named with Markdown and a fake marker) and one that
    is not."""
    root = tmp_path_factory.mktemp("comment")
    rows = shared_rows[:45]
    base = write_fake_run(root / "evals" / "base", {t: _questions(rows) for t in TASKS})
    worse = write_fake_run(root / "evals" / "worse", {t: _questions(rows, wrong=True) for t in TASKS},
                           model_args={"pretrained": "fake-model", "peft": str(root / EVIL.replace("/", "_"))})
    same = write_fake_run(root / "evals" / "same", {t: _questions(rows, seed=1) for t in TASKS},
                          model_args={"pretrained": "fake-model", "peft": str(root / "same-lora")})
    return root, base, worse, same


def _gate(base, cand, json_path, *extra) -> int:
    return fm5(["gate", "--baseline", str(base), "--candidate", str(cand), "--json", str(json_path), *extra])


def test_comment_leads_with_the_decision_and_lists_only_failing_metrics(runs, tmp_path):
    root, base, worse, same = runs
    assert _gate(base, worse, tmp_path / "worse.json") == 1
    assert _gate(base, same, tmp_path / "same.json") == 0
    out = tmp_path / "comment.md"
    assert fm5(["report", str(base), str(worse), str(same), "-o", str(tmp_path / "r.html"), "--comment", str(out),
                "--gate", str(tmp_path / "worse.json"), "--gate", str(tmp_path / "same.json"),
                "--link", "https://github.com/o/r/actions/runs/1"]) == 0
    text = out.read_text()
    lines = text.splitlines()
    assert lines[0] == C.MARKER and text.count(C.MARKER) == 1  # the label's fake marker is inert
    assert lines[1] == "### fm5 gate: ❌ regression (exit 1)"
    failing = [line for line in lines if line.startswith("| fm5_qa")]
    gate_rows = json.loads((tmp_path / "worse.json").read_text())["rows"]
    assert len(failing) == sum(r["verdict"] == "fail" for r in gate_rows) >= 2
    assert all(" f1 " in line or "exact_match" in line or "bertscore" in line for line in failing)
    assert "no metric regressed beyond its tolerance (12 checked)" in text
    assert "**Verdict** (baseline **fake-model**)" in text
    assert text.rstrip().endswith("(https://github.com/o/r/actions/runs/1) (this run's artifacts).")
    rendered = MarkdownIt("commonmark").enable(["table", "strikethrough"]).render(text)
    assert "<strong>pwned</strong>" not in rendered and 'href="https://evil' not in rendered
    assert rendered.count('<a href="') == 1  # the link we asked for, nothing from a label


def test_unusable_input_is_a_decision_too(runs, tmp_path):
    root, base, worse, _ = runs
    missing = tmp_path / "nowhere"
    assert _gate(base, missing, tmp_path / "g.json", "--markdown", str(tmp_path / "summary.md")) == 2
    doc = json.loads((tmp_path / "g.json").read_text())
    assert doc["verdict"] == "unusable" and "nowhere" in doc["error"] and doc["rows"] == []
    assert "UNUSABLE INPUT" in (tmp_path / "summary.md").read_text()
    assert _gate(base, worse, tmp_path / "w.json") == 1
    body = C.comment([C.check_gate(json.loads((tmp_path / "w.json").read_text()), "w.json"), doc], None)
    assert body.splitlines()[1] == "### fm5 gate: ⚠️ unusable input (exit 2)"
    assert "unusable input, nothing was compared" in body


def test_the_comment_is_cut_cleanly_under_the_limit():
    rows = [{"task": f"task{i}", "metric": "f1", "verdict": "fail", "delta": -0.5, "low": -0.6, "high": -0.4,
             "tolerance": 0.02} for i in range(5000)]
    gate = {"verdict": "fail", "rows": rows, "candidate_label": "cand", "baseline_label": "base"}
    body = C.comment([gate], None, "https://example.org/run")
    assert C._size(body) <= C.LIMIT
    table = [line for line in body.splitlines() if line.startswith("| task") and not line.startswith("| task |")]
    assert 1000 < len(table) < 5000 and all(line.endswith("| 0.0200 |") for line in table)  # whole rows only
    left = int(next(line for line in body.splitlines() if "left out" in line).split()[0].lstrip("*"))
    assert left == 5000 - len(table)
    assert body.rstrip().endswith("(this run's artifacts).")
    small = C.comment([gate], None, limit=3000)
    assert C._size(small) <= 3000 and "left out" in small


def test_bad_comment_inputs_are_one_line_errors_and_write_nothing(runs, tmp_path, capsys):
    root, base, worse, _ = runs
    html = tmp_path / "r.html"
    assert fm5(["report", str(base), "-o", str(html), "--comment", str(tmp_path / "c.md")]) == 2
    assert "--comment needs at least one --gate" in capsys.readouterr().err
    (tmp_path / "bad.json").write_text('{"verdict": "maybe", "rows": []}')
    assert fm5(["report", str(base), "-o", str(html), "--comment", str(tmp_path / "c.md"), "--gate",
                str(tmp_path / "bad.json")]) == 2
    err = capsys.readouterr().err
    assert "bad.json: field verdict" in err and len(err.strip().splitlines()) == 1
    _gate(base, worse, tmp_path / "w.json")
    assert fm5(["report", str(base), "-o", str(html), "--comment", str(tmp_path / "c.md"), "--gate",
                str(tmp_path / "w.json"), "--link", "javascript:alert(1)"]) == 2
    assert "--link" in capsys.readouterr().err
    assert not html.exists() and not (tmp_path / "c.md").exists()
    with pytest.raises(UsageError):
        C.comment([], None)

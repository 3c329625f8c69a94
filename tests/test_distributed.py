"""Data-parallel `fm5 eval` on 2 CPU processes (torchrun, gloo): the same files as one process, and a failing
rank ends the whole job with one line and no model folder."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REPO
from conftest import FM5
from harness_ext.results import load_run

pytestmark = pytest.mark.slow
TORCHRUN = Path(sys.executable).parent / "torchrun"
SETTINGS = ["--tasks", "fm5_qa_mc_closed,fm5_qa_closed", "--limit", "4", "--batch_size", "1", "--gen_kwargs",
            "max_gen_toks=8"]


def _eval(out, model_args, *extra, processes=1, env=None):
    cmd = [*FM5] if processes == 1 else \
        [str(TORCHRUN), "--nproc_per_node", str(processes), "-m", "fm5"]
    return subprocess.run([*cmd, "eval", "--model_args", model_args, "--output_path", str(out), *extra],
                          capture_output=True, text=True, timeout=900, cwd=REPO, env={**os.environ, **(env or {})})


def _samples(folder, task):
    (path,) = folder.glob(f"samples_{task}_*.jsonl")
    return sorted((json.loads(line) for line in path.read_text().splitlines()), key=lambda s: s["doc_id"])


def test_two_processes_write_what_one_process_writes(tmp_path, small_qa, smollm2_gguf, random_adapter):
    args = "pretrained={},gguf_file={}".format(*smollm2_gguf)
    extra = ["--adapters", str(random_adapter), "--data", str(small_qa), *SETTINGS]
    one = _eval(tmp_path / "one", args, *extra)
    assert one.returncode == 0, one.stderr[-2000:]
    two = _eval(tmp_path / "two", args, *extra, processes=2)
    assert two.returncode == 0, two.stderr[-2000:]
    assert two.stdout.count("[fm5 eval] 1/2 base: done") == 1  # rank 0 reports, the others stay quiet
    for model in ("base", "random-lora"):
        a, b = tmp_path / "one" / model, tmp_path / "two" / model
        assert sorted(p.name.split("_20")[0] for p in a.iterdir()) == sorted(p.name.split("_20")[0] for p in b.iterdir())
        ra, rb = load_run(a), load_run(b)
        assert ra.label == rb.label and ra.adapter == rb.adapter
        for task in ("fm5_qa_mc_closed", "fm5_qa_closed"):
            ta, tb = ra.tasks[task], rb.tasks[task]
            assert (ta.n_original, ta.n_effective) == (tb.n_original, tb.n_effective) == (8, 4)
            assert ta.aggregate.keys() == tb.aggregate.keys()
            for metric, value in ta.aggregate.items():
                assert tb.aggregate[metric] == pytest.approx(value, abs=1e-6), (model, task, metric)
            sa, sb = _samples(a, task), _samples(b, task)
            assert [s["doc_id"] for s in sa] == [s["doc_id"] for s in sb] == [0, 1, 2, 3]
            for x, y in zip(sa, sb):
                assert x["doc"] == y["doc"] and x["target"] == y["target"]
                for metric in x["metrics"]:
                    assert y[metric] == pytest.approx(x[metric], abs=1e-6)


def test_a_failing_rank_fails_the_job_with_one_line_and_no_folder(tmp_path, small_qa, smollm2_gguf):
    inject = tmp_path / "inject"
    inject.mkdir()
    (inject / "sitecustomize.py").write_text(  # rank 1 breaks while scoring (this process only)
        "import os\n"
        "if os.environ.get('RANK') == '1':\n"
        "    import harness_ext.lm as lm\n"
        "    def fail(self, *args, **kwargs):\n"
        "        raise RuntimeError('injected failure on rank 1')\n"
        "    lm.PrefixSharingHFLM._loglikelihood_tokens = fail\n")
    out = tmp_path / "out"
    proc = _eval(out, "pretrained={},gguf_file={}".format(*smollm2_gguf), "--data", str(small_qa), *SETTINGS,
                 processes=2, env={"PYTHONPATH": os.pathsep.join([str(inject), str(REPO)])})
    assert proc.returncode != 0
    ours = [line for line in proc.stderr.splitlines() if line.startswith("fm5 eval")]
    assert ours == ["fm5 eval: error: rank 1: RuntimeError: injected failure on rank 1"]
    assert "harness_ext" not in "".join(ln for ln in proc.stderr.splitlines() if ln.strip().startswith("File "))
    assert not out.exists() or list(out.iterdir()) == []  # not even a hidden partial folder

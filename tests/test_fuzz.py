"""Fuzzing every input the CPU-cheap commands read: seeded mutations of valid files (tests/fuzz.py), each case one
in-process `fm5` call that must end in exit 0 or 2 with one line on stderr, never a traceback; the gate may exit 1
only with a computed regression in its JSON verdict.

FM5_FUZZ_CASES sets the cases per input kind (default 1000); the counts and times are printed (pytest -s)."""

from __future__ import annotations

import json
import logging
import math
import os
import random
import shutil
import time
import warnings

import pytest
import yaml

import fuzz
from conftest import REPO, write_jsonl
from fakes import write_fake_run
from fakes import fake_mc_questions as _mc_questions
from fakes import fake_questions as _questions

CASES = int(os.environ.get("FM5_FUZZ_CASES", "1000"))
ALL = ("fm5_qa_open", "fm5_qa_closed", "fm5_qa_mc_open", "fm5_qa_mc_closed")


@pytest.fixture(autouse=True)
def _like_a_fresh_process():
    """Each case as a new process sees it: every warning shown, logging bound to the captured stderr."""
    handlers = logging.root.handlers[:]
    with warnings.catch_warnings():
        warnings.simplefilter("always")
        yield
    logging.root.handlers[:] = handlers


def _run(tally, case, argv, **kwargs):
    logging.root.handlers.clear()
    code, err = fuzz.run_cli(argv)
    tally.check(case, code, err, **kwargs)
    return code, err


def _report(tally, t0):
    print(f"\nfuzz {tally.kind}: {tally.cases} cases in {time.time() - t0:.1f}s, exit codes {tally.codes}")
    assert tally.cases >= CASES
    assert not tally.bad, "\n".join(tally.bad)


@pytest.fixture(scope="module")
def qa_rows(shared_rows):
    return sorted(shared_rows, key=lambda r: len(r["passage"]))[:40]


def _file_case(rng, path, valid_value, dump):
    """Write one mutated case of a file: structural (60 %), byte-level (30 %), or file-level (10 %)."""
    roll = rng.random()
    if roll < 0.6:
        fuzz.write_case(path, dump(fuzz.mutate_value(valid_value, rng)))
    elif roll < 0.9:
        fuzz.write_case(path, fuzz.mutate_bytes(dump(valid_value), rng))
    else:
        what = rng.choice(fuzz.FILE_MUTATIONS)
        if what == "missing":
            if path.is_symlink() or path.exists():
                path.unlink()
        else:
            fuzz.write_case(path, None if what == "folder" else b"")


def _jsonl(rows, rng):
    return b"".join(fuzz.dumps_json(r, rng) + b"\n" for r in rows)


@pytest.mark.parametrize("form", ["jsonl", "json"])
def test_fuzz_qa_files(tmp_path, qa_rows, form):
    rng, tally, t0 = random.Random(f"qa-{form}"), fuzz.Tally(f"QA {form}"), time.time()
    path = tmp_path / f"qa.{form}"
    for n in range(CASES):
        if form == "jsonl" and rng.random() < 0.6:  # one row mutated, the others intact
            i = rng.randrange(len(qa_rows))
            lines = [fuzz.dumps_json(r, rng) for r in qa_rows]
            lines[i] = fuzz.dumps_json(fuzz.mutate_value(qa_rows[i], rng), rng)
            fuzz.write_case(path, b"\n".join(lines) + b"\n")
        else:
            _file_case(rng, path, qa_rows, (lambda v: fuzz.dumps_json(v, rng)) if form == "json"
                       else (lambda v: _jsonl(v if isinstance(v, list) else [v], rng)))
        _run(tally, n, ["data", "--data", str(path)])
    _report(tally, t0)


def _yaml(value) -> bytes:
    try:
        return yaml.safe_dump(value, allow_unicode=True).encode("utf-8", "surrogatepass")
    except (yaml.YAMLError, RecursionError, ValueError):
        return b"[" * 1500


def test_fuzz_training_config_and_overrides(tmp_path, small_qa):
    """`fm5 train --check`: a mutated YAML config (half the cases) or mutated --key value overrides."""
    rng, tally, t0 = random.Random("train"), fuzz.Tally("training config"), time.time()
    valid = yaml.safe_load((REPO / "training" / "configs" / "smollm2_cpu.yaml").read_text())
    valid.update(max_document_rows=8, max_train_rows=16)
    good, config = tmp_path / "good.yaml", tmp_path / "train.yaml"
    good.write_bytes(_yaml(valid))
    keys = ["learning_rate", "num_train_epochs", "lora_r", "document_epochs", "max_train_rows", "lora_target_modules",
            "seen_fraction", "test_size", "eval_size", "max_length", "split_seed", "variant", "gguf_file", "dtype",
            "model_name_or_path", "per_device_train_batch_size", "not_a_setting", "data", "lr_scheduler_type",
            "document_schedule"]
    values = ["", "nan", "inf", "-1", "0", "1e999", "[", "{a: [", "null", "true", "x" * 300, "\u00e9", "0x10", "[1,2",
              "{}", "[]", "[q_proj, nope]", "closed", "mixed", "2", "0.5", "1.5", "-0.1", "../..", "[[[[[[[[[[]]]]]]]]]]"]
    argv = ["train", "--data", str(small_qa), "--output_dir", str(tmp_path / "out"), "--check"]
    for n in range(CASES):
        if n % 2 == 0:
            _file_case(rng, config, valid, _yaml)
            _run(tally, f"yaml {n}", [*argv, "--config", str(config)])
        else:
            extra = []
            for _ in range(rng.randint(1, 3)):
                key = rng.choice(keys)
                form = rng.randrange(4)
                if form == 0:
                    extra += [f"--{key}", rng.choice(values)]
                elif form == 1:
                    extra += [f"--{key}={rng.choice(values)}"]
                elif form == 2:
                    extra += [f"--{key}"]  # a flag without a value (true)
                else:
                    extra += [rng.choice(["--", "---x", "-x", "stray", "--=1"])]
            _run(tally, f"overrides {extra}", [*argv, "--config", str(good), *extra])
    _report(tally, t0)


@pytest.fixture(scope="module")
def evals(tmp_path_factory, shared_rows):
    """A baseline and a candidate (all four tasks, seen / unseen groups) and a training run for the candidate."""
    root = tmp_path_factory.mktemp("fuzz-evals")
    rows = shared_rows[:8]
    training = root / "run"
    training.mkdir()
    base = write_fake_run(root / "evals" / "base", {**{t: _questions(rows) for t in ALL[:2]},
                                                    **{t: _mc_questions(rows) for t in ALL[2:]}})
    cand = write_fake_run(root / "evals" / "run", {**{t: _questions(rows, keep=0.7, seed=1) for t in ALL[:2]},
                                                   **{t: _mc_questions(rows, seed=1, knowledge=0.3) for t in ALL[2:]}},
                          model_args={"pretrained": "fake-model", "peft": str(training)})
    run = {"base_model": {"model_name_or_path": "fake-model", "gguf_file": None}, "adapter": {"r": 8},
           "data": {"sha256": "ab" * 32, "rows": 80}, "git_commit": "deadbeef", "wall_time_s": 12.0,
           "split": {"train_ids": [r["id"] for r in shared_rows[10:20]], "test_ids": [r["id"] for r in rows],
                     "test_seen_ids": [r["id"] for r in rows[::2]], "test_unseen_ids": [r["id"] for r in rows[1::2]]},
           "stages": [{"name": "document", "texts": 10, "epochs": 1}, {"name": "qa", "rows": 10, "epochs": 1}],
           "corpus": {"sha256": "cd" * 32, "texts": 10}}
    (training / "fm5_run.json").write_text(json.dumps(run))
    (training / "trainer_state.json").write_text(json.dumps({"log_history": [{"step": 1, "loss": 2.0}]}))
    config = yaml.safe_load((REPO / "examples" / "gate_mc.yaml").read_text())
    # a smaller gate (fewer bootstraps per case) over both task families and the knowledge rule
    config.update(tasks=["fm5_qa_closed", "fm5_qa_mc_closed"], metrics=["perplexity", "f1", "bertscore_f1", "margin"])
    return root, base, cand, training, run, config


def _gate(tally, case, root, base, cand, config=None):
    verdict = root / "verdict.json"
    verdict.unlink(missing_ok=True)
    argv = ["gate", "--baseline", str(base), "--candidate", str(cand), "--json", str(verdict), "--allow-subset"]
    code, _ = _run(tally, case, [*argv, *(["--config", str(config)] if config else [])], allowed=(0, 1, 2))
    if code == 1:  # a regression: computed, with finite numbers, on a row that failed
        doc = json.loads(verdict.read_text())
        failed = [r for r in doc["rows"] if r["verdict"] == "fail"]
        numbers = [r.get(k) for r in failed for k in ("baseline", "candidate", "delta", "low", "high")]
        if doc["verdict"] != "fail" or not failed or not all(isinstance(x, (int, float)) and math.isfinite(x)
                                                             for x in numbers):
            tally.bad.append(f"{case}: exit 1 without a computed regression: {failed}")


def test_gate_exit_1_is_checked_as_a_computed_regression(tmp_path, evals, shared_rows):
    """The seeded case that reaches the gate's exit 1: a candidate whose answers lost every gold word. Its verdict
    must carry finite numbers on the failing rows (the check the fuzz cases rely on)."""
    root, base, _, _, _, config = evals
    rows = shared_rows[:8]
    worse = write_fake_run(tmp_path / "evals" / "worse", {**{t: _questions(rows, wrong=True, nll_per_token=4.0)
                                                            for t in ALL[:2]},
                                                         **{t: _mc_questions(rows, skill=-3.0) for t in ALL[2:]}})
    gate_config = tmp_path / "gate.yaml"
    gate_config.write_bytes(_yaml({**config, "resamples": 10_000}))
    tally = fuzz.Tally("gate regression")
    _gate(tally, "regression", tmp_path, base, worse, gate_config)
    assert tally.codes == {1: 1}, tally.codes
    assert not tally.bad, tally.bad


def test_fuzz_gate_config(tmp_path, evals):
    root, base, cand, _, _, valid = evals
    rng, tally, t0 = random.Random("gate"), fuzz.Tally("gate config"), time.time()
    path = tmp_path / "gate.yaml"
    for n in range(CASES):
        _file_case(rng, path, valid, _yaml)
        _gate(tally, n, tmp_path, base, cand, path)
    _report(tally, t0)


@pytest.mark.parametrize("target", ["results", "samples", "fm5_run"])
def test_fuzz_results_samples_and_run_files(tmp_path, evals, target):
    """A mutated results_*.json, samples_*.jsonl line or fm5_run.json of the candidate, read by `fm5 gate` and
    (every fourth case) `fm5 report`."""
    root, base, cand_src, training_src, run, config = evals
    rng, tally, t0 = random.Random(target), fuzz.Tally(f"{target} file"), time.time()
    cand, training = tmp_path / "evals" / "run", tmp_path / "run"
    shutil.copytree(cand_src, cand)
    shutil.copytree(training_src, training)
    for f in cand.glob("results_*.json"):  # the candidate's adapter is this copy of the training run
        res = json.loads(f.read_text())
        res["config"]["model_args"]["peft"] = str(training)
        f.write_text(json.dumps(res))
    gate_config = tmp_path / "gate.yaml"
    gate_config.write_bytes(_yaml(config))
    (results_file,) = cand.glob("results_*.json")
    results = json.loads(results_file.read_text())
    samples_files = sorted(cand.glob("samples_*.jsonl"))
    samples = {f: [json.loads(line) for line in f.read_text().splitlines()] for f in samples_files}
    for n in range(CASES):
        for f in samples_files:  # every case starts from the valid files
            fuzz.write_case(f, "".join(json.dumps(s) + "\n" for s in samples[f]).encode())
        fuzz.write_case(results_file, json.dumps(results).encode())
        fuzz.write_case(training / "fm5_run.json", json.dumps(run).encode())
        if target == "results":
            _file_case(rng, results_file, results, lambda v: fuzz.dumps_json(v, rng))
        elif target == "fm5_run":
            _file_case(rng, training / "fm5_run.json", run, lambda v: fuzz.dumps_json(v, rng))
        else:
            f = rng.choice(samples_files)
            lines = [json.dumps(s).encode() for s in samples[f]]
            i = rng.randrange(len(lines))
            if rng.random() < 0.7:
                lines[i] = fuzz.dumps_json(fuzz.mutate_value(samples[f][i], rng), rng)
                fuzz.write_case(f, b"\n".join(lines) + b"\n")
            else:
                fuzz.write_case(f, fuzz.mutate_bytes(b"\n".join(lines) + b"\n", rng))
        if n % 4 == 3:
            _run(tally, n, ["report", str(root / "evals" / "base"), str(cand), str(training), "-o",
                            str(tmp_path / "report.html")])
        else:
            _gate(tally, n, tmp_path, base, cand, gate_config)
    _report(tally, t0)


def test_fuzz_adapter_folders(tmp_path, random_adapter):
    """A mutated adapter folder (config, weights, missing or odd files), through `fm5 eval`'s adapter check, which
    runs before any task or model is loaded (`sweep.expand_adapters`; exit 2 on Fm5Error, as the CLI does)."""
    from harness_ext.errors import Fm5Error
    from harness_ext.sweep import expand_adapters

    rng, tally, t0 = random.Random("adapter"), fuzz.Tally("adapter folder"), time.time()
    valid_config = json.loads((random_adapter / "adapter_config.json").read_text())
    weights = (random_adapter / "adapter_model.safetensors").read_bytes()
    folder = tmp_path / "run"
    for n in range(CASES):
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir()
        (folder / "adapter_config.json").write_text(json.dumps(valid_config))
        (folder / "adapter_model.safetensors").write_bytes(weights)
        roll = rng.random()
        if roll < 0.45:
            _file_case(rng, folder / "adapter_config.json", valid_config, lambda v: fuzz.dumps_json(v, rng))
        elif roll < 0.8:
            target = folder / "adapter_model.safetensors"
            if rng.random() < 0.8:
                fuzz.write_case(target, fuzz.mutate_bytes(weights, rng))
            else:
                _file_case(rng, target, {}, lambda v: b"")
        else:  # a training output_dir layout: checkpoints and a document stage, some broken
            for name in rng.sample(["checkpoint-1", "checkpoint-x", "document", "checkpoint-02"], 2):
                shutil.copytree(random_adapter, folder / name)
                if rng.random() < 0.5:
                    (folder / name / "adapter_config.json").write_bytes(rng.choice([b"", b"{", b"[]", b"\xff"]))
        code, err = 0, ""
        try:
            for target in expand_adapters([str(folder)]):
                assert target.adapter is not None
        except Fm5Error as exc:
            code, err = 2, f"fm5 eval: error: {exc}\n"
        except Exception as exc:  # what a user would see as a traceback
            code, err = 3, f"Traceback: {type(exc).__name__}: {exc}"
        tally.check(n, code, err)
    _report(tally, t0)

"""`fm5 eval`: same numbers as separate stock lm_eval runs, clear errors, and the GGUF conversion cache."""

import json
import shutil
import subprocess

import pytest

from conftest import FM5, STOCK_LIMIT, STOCK_SETTINGS, fm5_in_process
from harness_ext import DEFAULT_EVAL_TASKS, models
from harness_ext.metrics import family_metrics
from harness_ext.results import load_run

pytestmark = pytest.mark.slow  # fm5 eval runs with the packaged model

TASKS = DEFAULT_EVAL_TASKS  # fm5 eval's default: the QA tasks and the multiple-choice probe


def fm5_eval(out, model_args, *adapters, extra=()) -> subprocess.CompletedProcess:
    """`fm5 eval` in this process (conftest.fm5_in_process); the command's own process is tested by the killed sweep
    below and in test_distributed."""
    return fm5_in_process("eval", "--model_args", model_args, "--adapters", *map(str, adapters), "--output_path",
                          str(out), *extra)


def _results(folder):
    (path,) = folder.glob("results_*.json")
    return json.loads(path.read_text())["results"]


def test_sweep_equals_separate_lm_eval_runs(tmp_path, small_qa, smollm2_gguf, random_adapter, base_run, adapter_run):
    """One `fm5 eval` of the base and an adapter writes what two stock lm_eval runs with the same settings write
    (conftest's shared stock runs: the same limit, batch size, new tokens and chat template)."""
    pretrained, gguf = smollm2_gguf
    args = f"pretrained={pretrained},gguf_file={gguf}"
    proc = fm5_eval(tmp_path / "sweep", args, random_adapter,
                    extra=["--limit", str(STOCK_LIMIT), "--batch_size", "4", *STOCK_SETTINGS,
                           "--apply_chat_template", "--data", str(small_qa)])
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "[fm5 eval] 1/2 base" in proc.stdout and "[fm5 eval] 2/2 random-lora" in proc.stdout
    for folder, stock in (("base", base_run), ("random-lora", adapter_run)):
        ours = _results(tmp_path / "sweep" / folder)
        theirs = _results(stock)
        assert set(ours) == set(theirs) == set(TASKS)
        for task in TASKS:
            for metric in family_metrics("mc" if "_mc_" in task else "qa"):
                # fm5 eval scores requests sharing a prompt from one pass over it (harness_ext.lm): the same
                # log-probabilities up to float rounding
                assert ours[task][f"{metric},none"] == pytest.approx(theirs[task][f"{metric},none"], rel=1e-5,
                                                                     abs=1e-6)
        # the same files as lm_eval writes, read the same way
        assert sorted(p.name.split("_20")[0] for p in (tmp_path / "sweep" / folder).iterdir()) == \
               sorted(p.name.split("_20")[0] for p in stock.iterdir())
    run = load_run(tmp_path / "sweep" / "random-lora")
    assert run.adapter == str(random_adapter) and run.label == "random-lora"


def test_training_output_dir_expands_to_checkpoints_and_final(tmp_path, random_adapter):
    from harness_ext.sweep import expand_adapters

    run = tmp_path / "run"
    for name in ("checkpoint-10", "checkpoint-2"):
        shutil.copytree(random_adapter, run / name)
    for f in random_adapter.iterdir():
        shutil.copy(f, run / f.name)
    assert [t.label for t in expand_adapters([str(run)])] == ["run/checkpoint-2", "run/checkpoint-10", "run"]
    assert [t.label for t in expand_adapters([str(run)], final_only=True)] == ["run"]  # fm5 eval --final_only
    shutil.rmtree(run / "checkpoint-2")
    for f in random_adapter.iterdir():
        (run / f.name).unlink()
    with pytest.raises(models.ModelError, match="no final adapter"):  # an error, not the last checkpoint
        expand_adapters([str(run)], final_only=True)


def test_wrong_adapter_dir_and_missing_checkpoint_exit_2(tmp_path, smollm2_gguf):
    args = "pretrained={},gguf_file={}".format(*smollm2_gguf)
    (tmp_path / "not-an-adapter").mkdir()
    for path, words in ((tmp_path / "not-an-adapter", "not a PEFT adapter"),
                        (tmp_path / "run" / "checkpoint-3", "not found")):
        proc = fm5_eval(tmp_path / "out", args, path)
        assert proc.returncode == 2 and words in proc.stderr and "Traceback" not in proc.stderr
        assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert not (tmp_path / "out").exists()


def test_adapter_for_another_base_exits_2(tmp_path, smollm2_gguf, small_qa, fm5_cache):
    from peft import LoraConfig, get_peft_model
    from transformers import LlamaConfig, LlamaForCausalLM

    other = LlamaForCausalLM(LlamaConfig(vocab_size=49152, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                                         num_attention_heads=4, num_key_value_heads=4))
    adapter = tmp_path / "other-base-lora"
    get_peft_model(other, LoraConfig(r=4, target_modules=["q_proj", "v_proj"])).save_pretrained(adapter)
    proc = fm5_eval(tmp_path / "out", "pretrained={},gguf_file={}".format(*smollm2_gguf), adapter,
                    extra=["--data", str(small_qa)])
    last = proc.stderr.strip().splitlines()[-1]  # after the base's conversion progress, one error line
    assert proc.returncode == 2 and "does not fit base" in last and "size mismatch" in last
    assert "Traceback" not in proc.stderr


def test_conversion_cache_is_reused_and_invalidated(tmp_path, smollm2_gguf, fm5_cache, monkeypatch):
    """The session's cache holds the packaged GGUF's conversion (keyed by the file's bytes, not its path): a copy of
    the file reuses it; the copy changed is converted again into an entry of its own."""
    src = tmp_path / "models"
    src.mkdir()
    gguf = src / smollm2_gguf[1]
    shutil.copy(smollm2_gguf[0] + "/" + smollm2_gguf[1], gguf)
    first = models.converted_base(str(src), gguf.name)
    assert (first / "config.json").is_file() and (first / "model.safetensors").is_file()
    assert first == models.converted_base(*smollm2_gguf)  # the packaged file's entry: the same bytes
    calls = []
    monkeypatch.setattr(models, "_convert", lambda *a: calls.append(a))
    assert models.converted_base(str(src), gguf.name) == first and calls == []  # reused, not converted again
    monkeypatch.undo()
    with open(gguf, "ab") as fh:  # a changed file (trailing bytes: still a readable GGUF)
        fh.write(b"\0" * 64)
    second = models.converted_base(str(src), gguf.name)
    assert second != first and (second / "model.safetensors").is_file()
    model, _ = models.load_base(str(second))
    assert getattr(model, "hf_quantizer", None) is None and not hasattr(model.config, "quantization_config")


def _tree(folder):
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.mark.slow
def test_killed_sweep_loses_nothing_and_a_rerun_completes(tmp_path, small_qa, smollm2_gguf, random_adapter):
    """SIGKILL in the middle of a model's evaluation: folders that existed are byte-identical, no partial folder
    appears under a model's name, and the same command run again completes (keeping what was done)."""
    import signal

    other = tmp_path / "other-lora"  # other bytes, so it is evaluated, not reused
    shutil.copytree(random_adapter, other)
    (other / "adapter_config.json").write_text((other / "adapter_config.json").read_text() + "\n")
    args = "pretrained={},gguf_file={}".format(*smollm2_gguf)
    out = tmp_path / "out"
    settings = ["--tasks", "fm5_qa_mc_closed", "--limit", "2", "--data", str(small_qa)]
    first = fm5_eval(out, args, extra=settings)
    assert first.returncode == 0, first.stderr[-2000:]
    before = _tree(out / "base")

    cmd = [*FM5, "eval", "--model_args", args, "--adapters", str(random_adapter),
           str(other), "--output_path", str(out), "--overwrite", *settings]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        for line in proc.stdout:  # kill while the base is being re-evaluated (--overwrite)
            if "1/3 base: evaluating" in line:
                break
        import time

        time.sleep(1.5)
        assert proc.poll() is None, "the sweep ended before it could be killed"
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait()
    assert _tree(out / "base") == before
    visible = sorted(p.name for p in out.iterdir() if not p.name.startswith("."))
    assert visible == ["base"]  # nothing under random-lora / other-lora

    rerun = fm5_eval(out, args, random_adapter, other, extra=settings)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    assert "1/3 base: kept" in rerun.stdout
    assert _tree(out / "base") == before
    assert sorted(p.name for p in out.iterdir()) == ["base", "other-lora", "random-lora"]  # leftovers removed
    for name in ("random-lora", "other-lora"):
        assert load_run(out / name).tasks["fm5_qa_mc_closed"].n_effective == 2

    again = fm5_eval(out, args, random_adapter, other, extra=settings)  # everything kept: no model is loaded
    assert again.returncode == 0 and again.stdout.count(": kept ") == 3 and "loaded in" not in again.stdout

    replaced = fm5_eval(out, args, extra=[*settings, "--overwrite"])
    assert replaced.returncode == 0 and "1/1 base: evaluating" in replaced.stdout
    assert sorted(p.name for p in out.iterdir()) == ["base", "other-lora", "random-lora"]
    assert load_run(out / "base").tasks["fm5_qa_mc_closed"].n_effective == 2

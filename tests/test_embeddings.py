"""The sentence-embedding cache: one vector per distinct text and model, shared by every list that holds the text,
kept across processes in ``$FM5_CACHE/embeddings``."""

from __future__ import annotations

import numpy as np
import pytest

from harness_ext import embeddings


@pytest.fixture
def counted(tmp_path, monkeypatch):
    """A cache of its own, and the texts the real model was asked to embed, call by call."""
    monkeypatch.setenv("FM5_CACHE", str(tmp_path))
    embeddings.forget()
    calls: list[list[str]] = []
    real = embeddings.sentence_embeddings

    def recording(texts, model_path, **kw):
        calls.append(list(texts))
        return real(texts, model_path, **kw)

    monkeypatch.setattr(embeddings, "sentence_embeddings", recording)
    yield calls
    embeddings.forget()


def test_each_text_is_embedded_once_whatever_list_holds_it(counted, tmp_path):
    first = embeddings.embed(("The commander's intent.", "A course of action.", "The commander's intent."))
    assert counted == [["The commander's intent.", "A course of action."]]  # duplicates once
    assert first.shape == (3, 384) and np.allclose(first[0], first[2])
    assert np.allclose(np.linalg.norm(first, axis=1), 1.0, atol=1e-5)

    second = embeddings.embed(("A course of action.", "Mission analysis.", "The commander's intent."))
    assert counted[1:] == [["Mission analysis."]]  # only the new text
    assert np.array_equal(second[0], first[1]) and np.array_equal(second[2], first[0])
    direct = embeddings.sentence_embeddings(["Mission analysis."], embeddings.embedding_model()["model"])
    assert np.allclose(second[1], direct[0], atol=1e-5)

    embeddings.forget()  # a new process: the shards on disk answer, the model is not asked
    calls = len(counted)
    assert np.array_equal(embeddings.embed(("Mission analysis.", "A course of action.")), second[[1, 0]])
    assert len(counted) == calls
    assert len(list(tmp_path.glob("embeddings/*/*.npz"))) == 2 and not list(tmp_path.glob("embeddings/*/.*"))


def test_a_damaged_shard_is_computed_again(counted, tmp_path):
    vectors = embeddings.embed(("Running estimates.",))
    (shard,) = tmp_path.glob("embeddings/*/*.npz")
    shard.write_bytes(b"not a numpy file")
    embeddings.forget()
    again = embeddings.embed(("Running estimates.",))
    assert len(counted) == 2 and np.allclose(again, vectors, atol=1e-6)


def test_no_texts_give_an_empty_matrix_of_the_models_width(counted):
    assert embeddings.embed(()).shape == (0, 384)

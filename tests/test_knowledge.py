"""The knowledge verdict's numbers (harness_ext.knowledge) against an independent computation."""

import math

import numpy as np
import pytest

from harness_ext import knowledge as K
from harness_ext import metrics
from harness_ext.stats import DEFAULT_RESAMPLES, DEFAULT_SEED


def _draws(n, seed):
    """The resampled question indices the bootstrap uses (numpy's generator, one row per resample)."""
    return np.random.default_rng(seed).integers(0, n, size=(DEFAULT_RESAMPLES, n))


def _data(seed=0, n_seen=25, n_unseen=23, effect=0.5):
    rng = np.random.default_rng(seed)
    bs, bu = rng.normal(0.6, 0.8, n_seen), rng.normal(0.6, 0.8, n_unseen)
    style = 0.2  # lifts both groups
    ms, mu = bs + style + effect + rng.normal(0, 0.3, n_seen), bu + style + rng.normal(0, 0.3, n_unseen)
    return [list(map(float, x)) for x in (bs, ms, bu, mu)]


def test_diff_in_diff_matches_a_direct_bootstrap():
    bs, ms, bu, mu = _data()
    est = K.diff_in_diff("margin", bs, ms, bu, mu)
    assert est.value == pytest.approx((np.mean(ms) - np.mean(bs)) - (np.mean(mu) - np.mean(bu)))
    ds, du = _draws(len(bs), DEFAULT_SEED), _draws(len(bu), DEFAULT_SEED + 1)
    direct = [(np.mean([ms[i] for i in a]) - np.mean([bs[i] for i in a]))
              - (np.mean([mu[i] for i in b]) - np.mean([bu[i] for i in b])) for a, b in zip(ds, du)]
    low, high = np.percentile(direct, [2.5, 97.5])
    assert (est.low, est.high) == pytest.approx((low, high), abs=1e-9)
    assert est.direction == 1 and (est.n_seen, est.n_unseen) == (25, 23)
    assert "Learned the document (95 %)" in K.verdict(est)
    # only style: both groups gain alike, no evidence
    bs, ms, bu, mu = _data(seed=1, effect=0.0)
    assert K.diff_in_diff("margin", bs, ms, bu, mu).direction == 0
    assert K.verdict(K.diff_in_diff("margin", bs, ms, bu, mu)).startswith("No evidence")


def test_diff_in_diff_of_perplexity_recomputes_the_corpus_value():
    rng = np.random.default_rng(3)
    pairs = lambda n, scale: [(float(rng.uniform(20, 60) * scale), int(rng.integers(20, 40))) for _ in range(n)]  # noqa
    bs, ms, bu, mu = pairs(10, 1.0), pairs(10, 0.8), pairs(12, 1.0), pairs(12, 1.0)
    est = K.diff_in_diff("perplexity", bs, ms, bu, mu)
    ppl = metrics.corpus_perplexity
    assert est.value == pytest.approx((ppl(ms) - ppl(bs)) - (ppl(mu) - ppl(bu)))
    ds, du = _draws(10, DEFAULT_SEED), _draws(12, DEFAULT_SEED + 1)
    direct = [(ppl([ms[i] for i in a]) - ppl([bs[i] for i in a])) - (ppl([mu[i] for i in b]) - ppl([bu[i] for i in b]))
              for a, b in zip(ds[:2000], du[:2000])]
    assert np.percentile(direct, 50) == pytest.approx(est.value, abs=0.6)
    # lower is better: a perplexity drop on seen questions only is learning
    assert est.value < 0 and K.verdict(est, "perplexity", "fm5_qa_closed").split(" (")[0] in (
        "Learned the document", "No evidence that it learned the document")


def test_gap_closure_matches_a_direct_computation():
    rng = np.random.default_rng(5)
    cb = list(rng.normal(0.5, 0.5, 25))
    ob = [x + 1.3 + rng.normal(0, 0.3) for x in cb]
    cm = [x + 0.65 + rng.normal(0, 0.3) for x in cb]
    est = K.gap_closure(cb, cm, ob)
    assert est.value == pytest.approx((np.mean(cm) - np.mean(cb)) / (np.mean(ob) - np.mean(cb)))
    direct = []
    for a in _draws(25, DEFAULT_SEED):
        gap = np.mean([ob[i] for i in a]) - np.mean([cb[i] for i in a])
        direct.append((np.mean([cm[i] for i in a]) - np.mean([cb[i] for i in a])) / gap)
    assert (est.low, est.high) == pytest.approx(tuple(np.percentile(direct, [2.5, 97.5])), abs=1e-9)
    undefined = K.gap_closure(cb, cm, cb)  # the passage does not help: no ratio
    assert math.isnan(undefined.value) and math.isnan(undefined.low)


def test_transitions():
    t = K.transitions([True, True, False, False, False], [True, False, True, False, True])
    assert t == {"learned": 2, "forgotten": 1, "still known": 1, "still unknown": 1}
    assert K.verdict(None).startswith("No verdict")

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
    assert K.verdict(K.effect_of("margin", bs, ms, bu, mu))[0].startswith("Learned the document (95 %)")
    # only style: both groups gain alike, no evidence
    bs, ms, bu, mu = _data(seed=1, effect=0.0)
    assert K.diff_in_diff("margin", bs, ms, bu, mu).direction == 0
    assert K.verdict(K.effect_of("margin", bs, ms, bu, mu))[0].startswith("No evidence")


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
    # lower is better: a perplexity drop on seen questions only moves the diff-in-diff down
    assert est.value < 0


def test_gap_closure_is_fiellers_interval():
    rng = np.random.default_rng(5)
    cb = list(rng.normal(0.5, 0.5, 25))
    ob = [x + 1.3 + rng.normal(0, 0.3) for x in cb]
    cm = [x + 0.65 + rng.normal(0, 0.3) for x in cb]
    est = K.gap_closure(cb, cm, ob)
    assert est.value == pytest.approx((np.mean(cm) - np.mean(cb)) / (np.mean(ob) - np.mean(cb)))
    # each bound is a root of Fieller's equation (x - r y)^2 = t^2 (v11 - 2 r v12 + r^2 v22), and the point lies
    # between them
    x, y = np.subtract(cm, cb), np.subtract(ob, cb)
    v = np.cov(x, y, ddof=1) / len(x)
    t = 2.0638985616280205  # Student t, 97.5 %, 24 degrees of freedom
    for r in (est.low, est.high):
        assert (x.mean() - r * y.mean()) ** 2 == pytest.approx(t * t * (v[0, 0] - 2 * r * v[0, 1] + r * r * v[1, 1]))
    assert est.low < est.value < est.high and not est.note
    undefined = K.gap_closure(cb, cm, cb)  # the passage does not help: no ratio
    assert math.isnan(undefined.value) and math.isnan(undefined.low) and undefined.note.startswith("n/a")


def test_gap_closure_with_a_small_gap_says_na_instead_of_a_truncated_interval():
    """A true open-book gap of 0.3 with noise: the old bootstrap dropped the resamples whose gap was <= 0 and showed
    +4.43 [+0.46, +48.38]. Now the gap's own interval holds 0, so there is no ratio, and the reason is given."""
    rng = np.random.default_rng(11)
    cb = list(rng.normal(0.5, 0.5, 25))
    ob = [x + 0.3 + rng.normal(0, 1.2) for x in cb]
    cm = [x + 0.2 + rng.normal(0, 0.3) for x in cb]
    gap = np.subtract(ob, cb)
    assert abs(gap.mean()) < 2.064 * gap.std(ddof=1) / 5  # the gap's interval holds 0
    est = K.gap_closure(cb, cm, ob)
    assert math.isnan(est.value) and math.isnan(est.low) and math.isnan(est.high)
    assert "not above 0" in est.note


def test_learned_needs_the_seen_gain_too():
    """Both groups got worse, the seen one less: the diff-in-diff is positive, but that is not learning."""
    rng = np.random.default_rng(2)
    bs, bu = rng.normal(0.6, 0.5, 25), rng.normal(0.6, 0.5, 25)
    ms, mu = bs - 0.3 + rng.normal(0, 0.1, 25), bu - 1.0 + rng.normal(0, 0.1, 25)
    eff = K.effect_of("margin", *(list(map(float, v)) for v in (bs, ms, bu, mu)))
    assert eff.did.direction == 1 and eff.p_did_better < 0.025 and eff.seen.value < 0
    sentence, css = K.verdict(eff)
    assert not sentence.startswith("Learned") and css == "ns"
    assert sentence.startswith("Seen questions moved more than unseen ones, but the seen questions did not")
    assert "seen questions -0.29" in sentence and "unseen -1.01" in sentence  # both gains, with their intervals


def test_too_few_questions_per_group_give_no_verdict():
    bs, ms, bu, mu = _data(n_seen=6, n_unseen=10, effect=1.5)
    sentence, css = K.verdict(K.effect_of("margin", bs, ms, bu, mu))
    assert sentence.startswith(f"Too few questions for a verdict (at least {K.MIN_PER_GROUP} per group)")
    assert css == "ns" and "6 seen / 10 unseen" in sentence


def test_randomization_tests_hold_their_level_at_six_questions():
    """Under the null (no group difference, no gain) the one-sided tests reject at most 2.5 % of the time at n = 6
    seen / 10 unseen, where a percentile bootstrap does not (measured here: printed)."""
    from harness_ext import stats

    rng = np.random.default_rng(7)
    runs, did_rejects, seen_rejects, boot_rejects = 400, 0, 0, 0
    for i in range(runs):
        base = rng.normal(0.6, 0.8, 16)
        model = base + rng.standard_t(3, 16) * 0.4  # heavy-tailed changes, no effect
        bs, ms, bu, mu = (list(map(float, v)) for v in (base[:6], model[:6], base[6:], model[6:]))
        did_rejects += stats.randomization_did("mean", bs, ms, bu, mu, seed=i).p_greater < 0.025
        seen_rejects += stats.sign_flip("mean", bs, ms, seed=i).p_greater < 0.025
        boot_rejects += K.diff_in_diff("margin", bs, ms, bu, mu, n_resamples=2000, seed=i).low > 0
    print(f"\nnull rejection at 6 + 10 questions, one-sided 2.5 %: randomization DiD {did_rejects / runs:.3f}, "
          f"sign flip {seen_rejects / runs:.3f}, percentile bootstrap DiD {boot_rejects / runs:.3f}")
    assert did_rejects / runs <= 0.025 + 0.02 and seen_rejects / runs <= 0.025 + 0.02


def test_false_positive_rates_of_the_declared_verdict_and_the_exploratory_family():
    """1,000 synthetic null runs, 8 models whose per-question changes are correlated (0.8) and share a style gain
    on both groups, 25 + 25 questions, margin and acc each: the declared sentence says "learned" in <= 5 % of runs,
    and the Holm-adjusted exploratory family flags anything in <= 5 %."""
    from harness_ext.stats import holm

    rng = np.random.default_rng(2026)
    runs, models, rho, n = 1000, 8, 0.8, 50
    claims = flags = 0
    for run in range(runs):
        base = rng.normal(0.7, 0.8, n)
        shared = rng.normal(0, 0.5, n)
        effects = []
        for m in range(models):
            change = 0.2 + np.sqrt(rho) * shared + np.sqrt(1 - rho) * rng.normal(0, 0.5, n)  # style: both groups
            model = base + change
            right_b, right_m = (base > 0.5).astype(float), (model > 0.5).astype(float)
            for b, x, metric in ((base, model, "margin"), (right_b, right_m, "acc")):
                effects.append(K.effect_of(metric, list(b[:25]), list(x[:25]), list(b[25:]), list(x[25:]),
                                           n_resamples=50, seed=run, n_permutations=400))
        claims += K.verdict(effects[0])[0].startswith("Learned")  # declared: model 0, margin
        flags += min(holm([e.p_did for e in effects[1:]])) < K.ALPHA
    print(f"\nnull runs: declared verdict 'learned' {claims / runs:.3f}, exploratory family flagged {flags / runs:.3f}")
    assert claims / runs <= 0.05 and flags / runs <= 0.05


def test_transitions():
    t = K.transitions([True, True, False, False, False], [True, False, True, False, True])
    assert t == {"learned": 2, "forgotten": 1, "still known": 1, "still unknown": 1}
    assert K.verdict(None)[0].startswith("No verdict")

"""The knowledge verdict's numbers (harness_ext.knowledge) against an independent computation."""

import dataclasses
import math

import numpy as np
import pytest

from harness_ext import claims, knowledge
from harness_ext import metrics
from harness_ext.stats import DEFAULT_RESAMPLES, DEFAULT_SEED

from conftest import REPO


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
    est = knowledge.diff_in_diff("margin", bs, ms, bu, mu)
    assert est.value == pytest.approx((np.mean(ms) - np.mean(bs)) - (np.mean(mu) - np.mean(bu)))
    ds, du = _draws(len(bs), DEFAULT_SEED), _draws(len(bu), DEFAULT_SEED + 1)
    direct = [(np.mean([ms[i] for i in a]) - np.mean([bs[i] for i in a]))
              - (np.mean([mu[i] for i in b]) - np.mean([bu[i] for i in b])) for a, b in zip(ds, du)]
    low, high = np.percentile(direct, [2.5, 97.5])
    assert (est.low, est.high) == pytest.approx((low, high), abs=1e-9)
    assert est.direction == 1 and (est.n_seen, est.n_unseen) == (25, 23)
    # the verdict needs MIN_PER_GROUP questions per group
    assert claims.verdict(knowledge.effect_of("margin", *_data(n_seen=45, n_unseen=43)))[0].startswith("Learned the document (95 %)")
    # only style: both groups gain alike, no evidence
    bs, ms, bu, mu = _data(seed=1, effect=0.0)
    assert knowledge.diff_in_diff("margin", bs, ms, bu, mu).direction == 0
    assert claims.verdict(knowledge.effect_of("margin", *_data(seed=1, n_seen=45, n_unseen=43, effect=0.0)))[0].startswith(
        "No evidence")


def test_diff_in_diff_of_perplexity_recomputes_the_corpus_value():
    rng = np.random.default_rng(3)
    pairs = lambda n, scale: [(float(rng.uniform(20, 60) * scale), int(rng.integers(20, 40))) for _ in range(n)]  # noqa
    bs, ms, bu, mu = pairs(10, 1.0), pairs(10, 0.8), pairs(12, 1.0), pairs(12, 1.0)
    est = knowledge.diff_in_diff("perplexity", bs, ms, bu, mu)
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
    est = knowledge.gap_closure(cb, cm, ob)
    assert est.value == pytest.approx((np.mean(cm) - np.mean(cb)) / (np.mean(ob) - np.mean(cb)))
    # each bound is a root of Fieller's equation (x - r y)^2 = t^2 (v11 - 2 r v12 + r^2 v22), and the point lies
    # between them
    x, y = np.subtract(cm, cb), np.subtract(ob, cb)
    v = np.cov(x, y, ddof=1) / len(x)
    t = 2.0638985616280205  # Student t, 97.5 %, 24 degrees of freedom
    for r in (est.low, est.high):
        assert (x.mean() - r * y.mean()) ** 2 == pytest.approx(t * t * (v[0, 0] - 2 * r * v[0, 1] + r * r * v[1, 1]))
    assert est.low < est.value < est.high and not est.note
    undefined = knowledge.gap_closure(cb, cm, cb)  # the passage does not help: no ratio
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
    est = knowledge.gap_closure(cb, cm, ob)
    assert math.isnan(est.value) and math.isnan(est.low) and math.isnan(est.high)
    assert "not above 0" in est.note


def test_learned_needs_the_seen_gain_too():
    """Both groups got worse, the seen one less: the diff-in-diff is positive, but that is not learning."""
    rng = np.random.default_rng(2)
    bs, bu = rng.normal(0.6, 0.5, 45), rng.normal(0.6, 0.5, 45)
    ms, mu = bs - 0.3 + rng.normal(0, 0.1, 45), bu - 1.0 + rng.normal(0, 0.1, 45)
    eff = knowledge.effect_of("margin", *(list(map(float, v)) for v in (bs, ms, bu, mu)))
    assert eff.did.direction == 1 and eff.p_did_better < 0.025 and eff.seen.value < 0
    sentence, css = claims.verdict(eff)
    assert not sentence.startswith("Learned") and css == "ns"
    assert sentence.startswith("Seen questions moved more than unseen ones, but the seen questions did not")
    assert "seen questions -0.30" in sentence and "unseen -1.00" in sentence  # both gains, with their intervals


def test_too_few_questions_per_group_give_no_verdict():
    bs, ms, bu, mu = _data(n_seen=6, n_unseen=10, effect=1.5)
    sentence, css = claims.verdict(knowledge.effect_of("margin", bs, ms, bu, mu))
    assert sentence.startswith(f"Too few questions for a verdict (at least {claims.MIN_PER_GROUP} per group)")
    assert css == claims.UNTESTED and "6 seen / 10 unseen" in sentence


def test_randomization_tests_hold_their_level_at_six_questions():
    """Under the null (no group difference, no gain) the one-sided tests reject at most 2.5 % of the time at n = 6
    seen / 10 unseen, where a percentile bootstrap does not (measured here: printed)."""
    from harness_ext import randomization

    rng = np.random.default_rng(7)
    runs, did_rejects, seen_rejects, boot_rejects = 400, 0, 0, 0
    for i in range(runs):
        base = rng.normal(0.6, 0.8, 16)
        model = base + rng.standard_t(3, 16) * 0.4  # heavy-tailed changes, no effect
        bs, ms, bu, mu = (list(map(float, v)) for v in (base[:6], model[:6], base[6:], model[6:]))
        did_rejects += randomization.randomization_did("mean", bs, ms, bu, mu, seed=i).p_greater < 0.025
        seen_rejects += randomization.sign_flip("mean", bs, ms, seed=i).p_greater < 0.025
        boot_rejects += knowledge.diff_in_diff("margin", bs, ms, bu, mu, n_resamples=2000, seed=i).low > 0
    print(f"\nnull rejection at 6 + 10 questions, one-sided 2.5 %: randomization DiD {did_rejects / runs:.3f}, "
          f"sign flip {seen_rejects / runs:.3f}, percentile bootstrap DiD {boot_rejects / runs:.3f}")
    assert did_rejects / runs <= 0.025 + 0.02 and seen_rejects / runs <= 0.025 + 0.02


def _simulation():
    """bench/verdict_null.py: null runs through the report's own code path (reports.sections.knowledge_view)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("verdict_null", REPO / "bench" / "verdict_null.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _bound(rate: float, runs: int) -> float:
    """A nominal rate plus its simulation error (1.96 binomial standard errors)."""
    return rate + 1.96 * (rate * (1 - rate) / runs) ** 0.5


@pytest.mark.slow
@pytest.mark.parametrize("null", ["normal", "skewed", "mixture"])
def test_the_report_holds_its_level_at_the_minimum_group_size(null):
    """At MIN_PER_GROUP questions per group, through the report's code: "learned" in at most 2.5 % of null runs, any
    false 95 % sentence in at most 5 % (each plus its simulation error), with a style gain on both groups (normal)
    and with a seen gain of mean 0 made of small gains and rare large losses while the unseen group falls."""
    sim, n, runs = _simulation(), claims.MIN_PER_GROUP, 400
    rates = sim.simulate(null, n, n, runs)
    print(f"\n{n} + {n} {null}: {rates}")
    assert rates["learned"] <= _bound(0.025, runs) and rates["any"] <= _bound(0.05, runs)


@pytest.mark.slow
def test_the_simulation_catches_mutants_of_the_rule(monkeypatch):
    """Each weakening of the verdict's rule shows in the simulation: the seen-gain condition dropped, one-sided 5 %
    tests, the negative claim without its seen-loss condition, the raw (unstudentized) statistics under unequal groups
    and spreads. Each mutant against the real rule on the same simulated runs."""
    sim, n = _simulation(), claims.MIN_PER_GROUP
    computed, numbers = knowledge.effect_of, {}

    def real(metric, *values, **options):
        """The real rule's numbers, each simulated run's computed once (the real rule and its mutant see the same
        runs, so a mutant that keeps the numbers differs from the real rule in the rule alone)."""
        key = (metric, *(tuple(v) if isinstance(v, list) else v for v in values), *sorted(options.items()))
        if key not in numbers:
            numbers[key] = computed(metric, *values, **options)
        return numbers[key]

    def use(effect_of):
        monkeypatch.setattr(knowledge, "effect_of", effect_of)

    def mutant(**fields):
        use(lambda *a, **k: dataclasses.replace(real(*a, **k), **fields))

    # 1. "learned" without the seen group's own gain: the unseen group falls, the seen one does not gain
    use(real)
    assert sim.simulate("skewed", n, n, 100)["learned"] <= 0.05
    mutant(p_seen_better=0.0)
    assert sim.simulate("skewed", n, n, 100)["learned"] >= 0.5
    # 2. "worse on what it read" without the seen group's own loss: both gain, the unseen group more
    use(real)
    assert sim.simulate("control", n, n, 100)["any"] <= 0.05
    mutant(p_seen_worse=0.0)
    assert sim.simulate("control", n, n, 100)["any"] >= 0.5
    # 3. one-sided 5 % tests instead of 2.5 %: a style gain on both groups, so the seen test always passes
    use(real)
    real_rate = sim.simulate("style", n, n, 600)["any"]
    with monkeypatch.context() as patch:
        patch.setattr(claims, "ALPHA", 0.10)
        mutant_rate = sim.simulate("style", n, n, 600)["any"]
    print(f"\none-sided 2.5 % vs 5 %: {real_rate:.4f} vs {mutant_rate:.4f}")
    assert real_rate <= _bound(0.05, 600) and mutant_rate - real_rate >= 0.025
    # 4. the raw statistics: a small seen group with a large spread against a large, tight unseen one
    real_rate = sim.simulate("unequal", n, 3 * n, 300)["any"]
    use(lambda *a, **k: real(*a, **{**k, "studentized": False}))
    mutant_rate = sim.simulate("unequal", n, 3 * n, 300)["any"]
    monkeypatch.undo()
    print(f"unequal groups, studentized vs raw: {real_rate:.4f} vs {mutant_rate:.4f}")
    assert real_rate <= _bound(0.05, 300) and mutant_rate >= 0.10


@pytest.mark.slow
def test_the_exploratory_family_can_reject_and_holds_its_level():
    """Five correlated adapters x three metrics, Holm over the 14 exploratory rows, 2,000 permutations per test (the
    smallest two-sided p, 2/2001, lies below Holm's first threshold 0.05/14): a real effect is flagged, a null one in
    at most 5 % of runs."""
    sim, n = _simulation(), claims.MIN_PER_GROUP
    assert sim.simulate("learned", n, n, 20, models=5)["family"] == 1.0
    rates = sim.simulate("normal", n, n, 150, models=5)
    print(f"\nexploratory family under the null: {rates}")
    assert rates["family"] <= _bound(0.05, 150)


def _null(seed, n_seen=10, n_unseen=10, spread_seen=0.5, spread_unseen=0.5):
    rng = np.random.default_rng(seed)
    bs, bu = rng.normal(0.6, 0.8, n_seen), rng.normal(0.6, 0.8, n_unseen)
    ms, mu = bs + 0.2 + rng.normal(0, spread_seen, n_seen), bu + 0.2 + rng.normal(0, spread_unseen, n_unseen)
    return [list(map(float, v)) for v in (bs, ms, bu, mu)]


def test_intervals_invert_the_tests_beside_them():
    """The diff-in-diff and gain intervals are the values the same randomization tests do not reject: an interval
    lies above 0 exactly when the one-sided p-value printed beside it is below 0.025 (the bootstrap interval
    disagreed with its p-value in up to 2.45 % of null runs at 10 + 10)."""
    from scipy import stats as scipy_stats

    agree = total = 0
    for seed in range(150):
        eff = knowledge.effect_of("margin", *_null(seed, 10, 10, 0.4, 0.8), n_permutations=2000)
        for est, p_up, p_down in ((eff.did, eff.p_did_better, eff.p_did_worse),
                                  (eff.seen, eff.p_seen_better, eff.p_seen_worse)):
            agree += (est.low > 0) == (p_up < 0.025) and (est.high < 0) == (p_down < 0.025)
            total += 1
    assert agree / total >= 0.99
    # at 75 + 75 the inverted interval is Welch's t interval, near enough
    bs, ms, bu, mu = _null(1, 75, 75)
    eff = knowledge.effect_of("margin", bs, ms, bu, mu)
    welch = scipy_stats.ttest_ind(np.subtract(ms, bs), np.subtract(mu, bu), equal_var=False).confidence_interval()
    assert (eff.did.low, eff.did.high) == pytest.approx((welch.low, welch.high), abs=0.03)


def test_worse_needs_the_seen_group_to_lose():
    """The issue's example: the seen group gained +0.3 and the unseen one +1.0. Seen minus unseen is below 0, but
    the seen questions did not get worse: no negative claim. A real loss on what was read is one."""
    rng = np.random.default_rng(4)
    bs, bu = rng.normal(0.6, 0.5, 40), rng.normal(0.6, 0.5, 40)
    ms, mu = bs + 0.3 + rng.normal(0, 0.1, 40), bu + 1.0 + rng.normal(0, 0.1, 40)
    eff = knowledge.effect_of("margin", *(list(map(float, v)) for v in (bs, ms, bu, mu)))
    assert eff.p_did_worse < 0.025 and eff.seen.direction == 1
    sentence, css = claims.verdict(eff)
    assert css == "ns" and sentence.startswith("Seen questions moved less than unseen ones, but the seen questions "
                                               "did not themselves get worse")
    ms = bs - 0.5 + rng.normal(0, 0.1, 40)
    sentence, css = claims.verdict(knowledge.effect_of("margin", *(list(map(float, v)) for v in (bs, ms, bu, mu))))
    assert css == "down" and sentence.startswith("Worse on what it read (95 %): the seen questions got worse")


def test_two_lines_say_only_what_was_tested():
    sentence, css = claims.two_lines("up", "ns")
    assert "no evidence that it answers questions about it better" in sentence and "does not answer" not in sentence
    sentence, css = claims.two_lines("up", claims.UNTESTED)  # too few questions, or none: nothing about questions
    assert css == "up" and "answers" not in sentence and "no verdict" in sentence
    sentence, css = claims.two_lines(claims.UNTESTED, "ns")
    assert css == claims.UNTESTED and sentence.startswith("No verdict on storage")


def test_gap_closure_counts_only_the_gain_on_what_was_read():
    """A style gain that lifts seen and unseen questions alike closes nothing: the numerator is the diff-in-diff.
    Before, the raw seen gain over the gap counted it as half the gap closed."""
    rng = np.random.default_rng(6)
    cb, cu = list(rng.normal(0.5, 0.5, 40)), list(rng.normal(0.5, 0.5, 40))
    ob = [x + 1.3 + rng.normal(0, 0.3) for x in cb]
    cm, mu = [x + 0.65 + rng.normal(0, 0.3) for x in cb], [x + 0.65 + rng.normal(0, 0.3) for x in cu]
    style = knowledge.gap_closure(cb, cm, ob, cu, mu)
    assert style.low < 0 < style.high and abs(style.value) < 0.1
    assert knowledge.gap_closure(cb, cm, ob).value == pytest.approx(0.5, abs=0.1)  # the raw seen gain: style as closure
    read = knowledge.gap_closure(cb, [x + 0.65 for x in cm], ob, cu, mu)  # the seen group gains 0.65 more
    assert read.value == pytest.approx(0.5, abs=0.1) and read.low > 0


def test_transitions():
    t = knowledge.transitions([True, True, False, False, False], [True, False, True, False, True])
    assert t == {"learned": 2, "forgotten": 1, "still known": 1, "still unknown": 1}
    assert claims.verdict(None)[0].startswith("No verdict")

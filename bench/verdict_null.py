"""How often the report's verdict claims something false: simulated null runs through the report's own code path
(``reports.sections.knowledge_view``, the same call ``fm5 report`` makes), every sentence counted.

    python bench/verdict_null.py --runs 1000                        # the README table (every design x null)
    python bench/verdict_null.py --runs 1000 --sizes 20 30 40 50    # the smallest group size: "learned" <= 2.5 %
    python bench/verdict_null.py --runs 400 --models 5 --nulls normal   # the exploratory family (Holm over 14 rows)

A null run: per question a base margin ~ N(0.6, 0.8) and a change (model - base) drawn from the null (below); acc is
margin > 0, acc_pmi is margin plus noise > 0; ``--models`` models share 80 % of their changes (correlated
adapters), the first is the declared one (``final``). Under every null the seen group did not gain on what it
read, so every sentence with a 95 % claim in it is false:
- "learned": the declared line says learned the document;
- "any": any false 95 % sentence: learned, worse on what it read, seen moved more (false unless the unseen group
  fell: skewed, mixture) or less than unseen;
- "family": a Holm-adjusted exploratory row is coloured (only with --models > 1: the other models and metrics).

The nulls (changes per question; seen and unseen drawn independently):
- normal: both groups 0.2 + N(0, 0.5) (a style gain on both);
- heavy: both 0.2 + 0.4 t(3);
- skewed: seen mean 0, long left tail (0.5 (1 - Exp(1))), unseen falling (N(-0.5, 0.5));
- mixture: seen 90 % +0.2 / 10 % -1.8 (mean 0), unseen falling (N(-0.5, 0.5));
- unequal: seen 0.3 + N(0, 1.5), unseen 0.3 + N(0, 0.3) (unequal spreads; with unequal groups the raw statistic's
  permutation test is not exact).
Permutations per test: ``--permutations`` (default 2,000: the smallest two-sided p, 2/2001, lies below Holm's first
threshold 0.05/14; the report itself uses 10,000). Prints one line per design x null with its run count.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DESIGNS = ((10, 10), (25, 25), (40, 40), (75, 75), (12, 28), (40, 120))
NULLS = ("normal", "heavy", "skewed", "mixture", "unequal")
# scenarios the tests use to catch mutants of the rule (tests/test_knowledge.py), and one real effect
OTHERS = ("style", "control", "learned")
TASK = "fm5_qa_mc_closed"


def changes(rng, null: str, n: int, group: str):
    """Per-question changes (model - base) of one group under a null."""
    if null == "normal":
        return 0.2 + rng.normal(0, 0.5, n)
    if null == "heavy":
        return 0.2 + 0.4 * rng.standard_t(3, n)
    if group == "unseen" and null in ("skewed", "mixture"):
        return rng.normal(-0.5, 0.5, n)
    if null == "skewed":
        return 0.5 * (1 - rng.exponential(1.0, n))
    if null == "mixture":
        return rng.choice([0.2, -1.8], size=n, p=[0.9, 0.1])
    if null == "unequal":
        return 0.3 + rng.normal(0, 1.5 if group == "seen" else 0.3, n)
    if null == "style":  # a large style gain on both groups: the seen gain's own test always passes
        return 0.6 + rng.normal(0, 0.3, n)
    if null == "control":  # both gain, the unseen group more: the seen questions did not get worse
        return (0.2 if group == "seen" else 0.8) + rng.normal(0, 0.3, n)
    if null == "learned":  # not a null: the seen group gains 1.0 more
        return (1.2 if group == "seen" else 0.2) + rng.normal(0, 0.5, n)
    raise ValueError(null)


def model_runs(rng, null: str, n_seen: int, n_unseen: int, models: int = 1):
    """A base ModelRun and ``models`` adapters' ModelRuns of one null run (the probe's task, per question margin,
    acc, acc_pmi), in memory: what the results reader would return for lm-eval folders."""
    import numpy as np

    from harness_ext import results

    groups = ["seen"] * n_seen + ["unseen"] * n_unseen
    n = len(groups)
    base = rng.normal(0.6, 0.8, n)
    pmi_noise = rng.normal(0, 0.5, n)
    shared = np.concatenate([changes(rng, null, n_seen, "seen"), changes(rng, null, n_unseen, "unseen")])

    def run(label: str, values) -> results.ModelRun:
        questions = [results.Question(id=f"q{i:03d}", question="", answer="", prediction="", group=g, choices=["a", "b"],
                                gold=0, picked=0 if v > 0 else 1,
                                values={"margin": float(v), "acc": float(v > 0), "acc_pmi": float(v + e > 0),
                                        "acc_norm": float(v > 0)})
                     for i, (g, v, e) in enumerate(zip(groups, values, pmi_noise))]
        aggregate = {m: float(np.mean([q.values[m] for q in questions])) for m in ("margin", "acc", "acc_pmi",
                                                                                  "acc_norm")}
        task = results.TaskRun(TASK, "mc", "2.0", aggregate, n, n, None, None, None, questions)
        return results.ModelRun(label, Path(label), {}, None, "0.4.13", "", {TASK: task})

    out = []
    for m in range(models):  # correlated adapters: 80 % of the change shared
        own = np.concatenate([changes(rng, null, n_seen, "seen"), changes(rng, null, n_unseen, "unseen")])
        change = shared if m == 0 else np.sqrt(0.8) * shared + np.sqrt(0.2) * own
        out.append(run("run" if m == 0 else f"run/checkpoint-{m}", base + change))
    return run("base", base), out


CLAIMS = ("Learned the document", "Worse on what it read", "Seen questions moved more", "Seen questions moved less")
# the claims that are false under each null: all of them, except "moved more" where the unseen group fell (the
# diff-in-diff is then truly above 0, and saying so is right)
FALSE = {**{null: CLAIMS if null not in ("skewed", "mixture") else (CLAIMS[0], CLAIMS[1], CLAIMS[3]) for null in NULLS},
         "style": CLAIMS, "control": CLAIMS[:3], "learned": CLAIMS[1:]}


def classify(view, null: str) -> tuple[bool, bool, bool]:
    """(learned, a false 95 % sentence, an exploratory row coloured) of one report's knowledge view."""
    sentence = view.verdict.sentence if view.verdict else ""
    family = any(row.did.css in ("up", "down") for row in view.did if row.role == "exploratory")
    return sentence.startswith(CLAIMS[0]), sentence.startswith(FALSE[null]), family


def simulate(null: str, n_seen: int, n_unseen: int, runs: int, models: int = 1, permutations: int = 2000,
             seed: int = 2026) -> dict[str, float]:
    """Rates of false claims over ``runs`` null runs, each through reports.sections.knowledge_view."""
    import numpy as np

    from harness_ext import claims
    from reports import sections

    rng = np.random.default_rng([seed, n_seen, n_unseen, (NULLS + OTHERS).index(null)])
    declared = [(claims.Primary("final", *claims.STORED), "the default"), (claims.Primary(), "the default")]
    counts = np.zeros(3)
    for _ in range(runs):
        base, others = model_runs(rng, null, n_seen, n_unseen, models)
        counts += classify(sections.knowledge_view(base, others, declared, n_permutations=permutations), null)
    return dict(zip(("learned", "any", "family"), (counts / runs).tolist()))  # "any": a false 95 % sentence


def main() -> int:
    sys.path.insert(0, str(REPO))
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--runs", type=int, default=1000)
    p.add_argument("--models", type=int, default=1)
    p.add_argument("--permutations", type=int, default=2000)
    p.add_argument("--nulls", nargs="+", default=list(NULLS), choices=NULLS)
    p.add_argument("--sizes", nargs="+", type=int, help="equal groups of these sizes instead of the README designs")
    args = p.parse_args()
    designs = [(n, n) for n in args.sizes] if args.sizes else DESIGNS
    error = 1.96 * (0.025 * 0.975 / args.runs) ** 0.5
    print(f"{args.runs} null runs per line, {args.models} model(s), {args.permutations} permutations per test; "
          f"simulation error of a 2.5 % rate: +-{error:.3f}")
    for n_seen, n_unseen in designs:
        for null in args.nulls:
            started = time.time()
            rates = simulate(null, n_seen, n_unseen, args.runs, args.models, args.permutations)
            print(f"{n_seen:>3} + {n_unseen:<3} {null:<8} learned {rates['learned']:.4f}  any false 95 % sentence "
                  f"{rates['any']:.4f}" + (f"  exploratory family {rates['family']:.4f}" if args.models > 1 else "")
                  + f"  ({time.time() - started:.0f} s)", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

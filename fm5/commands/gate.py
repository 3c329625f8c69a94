"""`fm5 gate`: a candidate against a baseline under the gate's rule (harness_ext.gate), its settings
(harness_ext.gate_config) and its outputs (harness_ext.gate_report). Exit 0 pass, 1 regression, 2 unusable input."""

from __future__ import annotations

import argparse
import sys


def add_arguments(p: argparse.ArgumentParser) -> None:
    from harness_ext.gate import RULE

    p.description = RULE
    p.formatter_class = argparse.RawDescriptionHelpFormatter
    p.add_argument("--baseline", required=True, help="baseline model's lm-eval output folder")
    p.add_argument("--candidate", required=True, help="candidate model's lm-eval output folder")
    p.add_argument("--config", help="gate.yaml with tolerances (default: built-in, see examples/gate.yaml)")
    p.add_argument("--allow-subset", action="store_true", help="compare only the questions both runs answered")
    p.add_argument("--json", help="write machine-readable verdicts here")
    p.add_argument("--junit", help="write a JUnit XML report here (one test case per task x metric)")
    p.add_argument("--markdown", help="append a Markdown summary here (e.g. $GITHUB_STEP_SUMMARY)")


def main(args) -> int:
    """Exit 0 pass, 1 regression; unusable input raises (exit 2) after writing the decision ``unusable`` and its
    reason to --json and --markdown, so a CI step that reads them always finds one."""
    from harness_ext import gate, gate_report
    from harness_ext.errors import Fm5Error
    from harness_ext.files import write_atomic

    try:
        config = gate.load_config(args.config)
        base, cand = gate.single_run(args.baseline, "baseline"), gate.single_run(args.candidate, "candidate")
        rows, notes = gate.evaluate(base, cand, config, args.allow_subset)
    except (Fm5Error, OSError) as err:  # the CLI prints the one line and exits 2; the outputs say so first
        reason = str(err) if isinstance(err, Fm5Error) else f"{err.filename or ''}: {err.strerror or err}"
        if args.json:
            write_atomic(args.json, gate_report.unusable_document(reason, str(args.baseline), str(args.candidate)))
        if args.markdown:
            with open(args.markdown, "a", encoding="utf-8") as fh:
                fh.write(gate_report.unusable_markdown(reason))
        raise
    verdict = gate.decide(rows)
    print(f"fm5 gate: baseline {base.label} ({base.path}) vs candidate {cand.label} ({cand.path})")
    for n in notes:
        print(f"note: {n}")
    print(gate_report.table(rows))
    for r in rows:
        if r.note:
            print(f"note: {r.task}/{r.metric}: {r.note}")
    failed = [f"{r.task}/{r.metric}" for r in rows if r.verdict == "fail"]
    print(f"verdict: {verdict.upper()}" + (f" ({', '.join(failed)} regressed)" if failed else ""))
    if args.json:
        write_atomic(args.json, gate_report.document(rows, verdict, str(args.baseline), str(args.candidate),
                                                     (base.label, cand.label), config, notes))
    if args.junit:
        write_atomic(args.junit, gate_report.junit(rows))
    if args.markdown:
        with open(args.markdown, "a", encoding="utf-8") as fh:
            fh.write(gate_report.markdown(rows, verdict, base.label, cand.label, notes))
    sys.stdout.flush()
    return 1 if verdict == "fail" else 0

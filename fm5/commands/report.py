"""`fm5 report`: the HTML report (reports.build -> reports.render), and optionally its Markdown summary and the
pull-request comment (reports.comment) over `fm5 gate --json` files."""

from __future__ import annotations

import sys


def add_arguments(p) -> None:
    p.add_argument("paths", nargs="+", metavar="PATH",
                   help="an `fm5 eval` or `lm_eval --output_path` folder (one model or a sweep of several), and a "
                        "training output_dir to read its fm5_run.json (seen/unseen ids, checkpoint order)")
    p.add_argument("-o", "--output", required=True, help="HTML file to write")
    p.add_argument("--base", help="which PATH is the baseline (default: the first model)")
    p.add_argument("--markdown", help="also write the summary table as Markdown")
    p.add_argument("--primary", metavar="MODEL:TASK:METRIC",
                   help="the comparison the verdict is about, overriding the one the training run declared (the "
                        "report says so), e.g. final:fm5_qa_mc_closed:margin")
    p.add_argument("--stored", metavar="MODEL:TASK:METRIC",
                   help="the continuation-probe comparison of the verdict's first line (was the text stored?), "
                        "overriding the declared one (the report says so), e.g. document:fm5_doc_mc:margin")
    p.add_argument("--comment", metavar="FILE",
                   help="also write a pull-request comment (Markdown): the gate's decision, its failing metrics, the "
                        "verdict lines and --link; needs --gate")
    p.add_argument("--gate", action="append", default=[], metavar="JSON",
                   help="an `fm5 gate --json` file for --comment (repeat for several candidates)")
    p.add_argument("--link", metavar="URL", help="where the comment's readers find the report (e.g. the CI run)")


def main(args) -> int:
    from harness_ext.errors import UsageError
    from harness_ext.files import read_json, write_atomic
    from reports import comment
    from reports.build import build
    from reports.render import render_html, render_markdown

    gates = [comment.check_gate(read_json(path, UsageError), path) for path in args.gate]
    if args.comment and not gates:
        raise UsageError("--comment needs at least one --gate JSON file (fm5 gate --json)")
    report = build(args.paths, args.base, args.primary, args.stored)
    html = render_html(report)
    pr_comment = comment.comment(gates, report, args.link) if args.comment else None  # checks --link before writing
    for w in report.warnings:
        print(f"warning: {w}", file=sys.stderr)
    write_atomic(args.output, html)
    if args.markdown:
        write_atomic(args.markdown, render_markdown(report))
    if pr_comment is not None:
        write_atomic(args.comment, pr_comment)
    print(f"report written to {args.output}")
    return 0

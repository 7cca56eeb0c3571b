"""``rql-results``: aggregate the ``summary.json`` of ``rql-train`` runs into tables and figures.

    rql-results multirun/ --out results/          # tables printed as Markdown, files in results/
    rql-results outputs/ --format csv --by model.alpha --by data.source
    rql-results multirun/ --reference paper.csv   # the paper's numbers beside ours (results.reference)

How runs are told apart and pooled: :mod:`rql_lightning.results`. Bad input (a missing directory, no runs,
a ``--by`` key that is not dotted or in no run, a malformed reference CSV) is one ``error:`` line and exit
code 2.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from rql_lightning.cli.common import user_errors_as_one_line
from rql_lightning.results import (
    ResultsInputError,
    aggregate,
    check_by_keys,
    load_reference,
    load_runs,
    write_results,
)
from rql_lightning.results.reference import unmatched
from rql_lightning.results.tables import ENV_FIELDS, csv_text, env_rows, to_markdown

__all__ = ["main", "build_parser"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="rql-results",
        description="Aggregate the summary.json of rql-train runs into the paper's tables and figures.",
    )
    parser.add_argument("runs_dir", help="directory searched recursively for summary.json (outputs/, multirun/, ...)")
    parser.add_argument("--out", default="results", help="where tables and figures are written (default: results)")
    parser.add_argument("--format", choices=["md", "csv"], default="md", help="what is printed (default: md)")
    parser.add_argument(
        "--by",
        action="append",
        default=[],
        metavar="KEY",
        help="also split methods by a config value (model.alpha) or a data field (data.source, data.dataset, "
        "data.key, data.size_bytes); repeatable",
    )
    parser.add_argument(
        "--reference",
        metavar="CSV",
        help="put these numbers beside ours: columns environment, task (empty: the environment), method, success "
        "and optionally stderr, in percent; adds the difference and whether ours lies within 2 standard errors",
    )
    parser.add_argument("--include-unfinished", action="store_true", help="count running/failed runs' last evaluation")
    parser.add_argument("--no-plots", action="store_true", help="skip the figures (overview and learning curves)")
    return parser


def _report(args: argparse.Namespace) -> int:
    check_by_keys(args.by)
    reference = None if args.reference is None else load_reference(args.reference)
    runs, notes = load_runs(args.runs_dir, by=args.by, include_unfinished=args.include_unfinished)
    for note in notes:
        print(f"rql-results: left out {note}", file=sys.stderr)
    if not runs:
        raise ResultsInputError(
            f"runs_dir={args.runs_dir} holds no finished run with a summary.json ({len(notes)} left out); "
            "train with rql-train, or add --include-unfinished to count running or failed runs"
        )
    results = aggregate(runs)
    if reference is not None and (rows := unmatched(results, reference)):
        print(f"rql-results: {len(rows)} reference row(s) beside no run of ours: {', '.join(rows)}", file=sys.stderr)
    written = write_results(runs, args.out, results=results, plots=not args.no_plots, notes=notes, reference=reference)
    if args.format == "md":
        print(to_markdown(results, reference))
    else:
        print(csv_text(env_rows(results), ENV_FIELDS), end="")
    print(f"{len(runs)} runs; wrote {len(written)} files to {Path(args.out)}/", file=sys.stderr)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Console script ``rql-results``."""
    args = build_parser().parse_args(argv)
    return user_errors_as_one_line(lambda: _report(args))


if __name__ == "__main__":
    raise SystemExit(main())

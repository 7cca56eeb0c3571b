"""``rql-results``: aggregate the summary.json of rql-train runs into the paper's tables and figures.

Writes ``results.md``, ``results_{env,task}.csv``, ``runs.csv``, ``overview.png``, ``curves/<env>.png``; with a
reference ``results_reference.csv``; with premise diagnostics ``diagnostics.md`` and ``diagnostics/diag_<name>.png``.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from functools import partial
from pathlib import Path

from rql_lightning.cli.common import user_errors_as_one_line
from rql_lightning.results import ResultsInputError, aggregate, load_reference, load_runs
from rql_lightning.results.aggregate import diagnostic_curves
from rql_lightning.results.plots import plot_curves, plot_diagnostic, plot_overview
from rql_lightning.results.reference import compare, reference_rows, unmatched
from rql_lightning.results.tables import csv_text, diagnostics_markdown, env_rows, run_rows, task_rows, to_markdown


def _report(args: argparse.Namespace) -> int:
    """Read and pool the runs, write the tables and figures into ``--out`` and print the tables."""
    reference = None if args.reference is None else load_reference(args.reference)
    runs, notes = load_runs(args.runs_dir, by=args.by, include_unfinished=args.include_unfinished)
    for note in notes:
        print(f"rql-results: left out {note}", file=sys.stderr)
    if not runs:
        raise ResultsInputError(
            f"runs_dir={args.runs_dir} holds no finished run with a summary.json ({len(notes)} left out); "
            "train with rql-train, or add --include-unfinished to count running or failed runs"
        )
    res = aggregate(runs)
    if reference is not None and (rows := unmatched(res, reference)):
        print(f"rql-results: {len(rows)} reference row(s) beside no run of ours: {', '.join(rows)}", file=sys.stderr)
    tables = to_markdown(res, reference)
    md = f"# Results\n\n{tables}\n{len(runs)} runs from `summary.json` files.\n"
    if notes:
        md += "\nLeft out:\n\n" + "\n".join(f"- {n}" for n in notes) + "\n"
    texts = {"results.md": md, "results_env.csv": csv_text(env_rows(res))}
    texts |= {"results_task.csv": csv_text(task_rows(res)), "runs.csv": csv_text(run_rows(runs))}
    if reference is not None:
        texts["results_reference.csv"] = csv_text(reference_rows(compare(res, reference)))
    diagnostics = diagnostic_curves(runs)
    if diagnostics:
        texts["diagnostics.md"] = f"# Premise diagnostics\n\n{diagnostics_markdown(diagnostics)}"
    out = Path(args.out).expanduser()
    out.mkdir(parents=True, exist_ok=True)
    for name, text in texts.items():
        (out / name).write_text(text)
    figures = [("overview.png", partial(plot_overview, res))]  # drawn one at a time
    figures += [(f"curves/{env}.png", partial(plot_curves, runs, env)) for env in res.envs]
    figures += [
        (f"diagnostics/{t.replace('/', '_')}.png", partial(plot_diagnostic, t, c)) for t, c in diagnostics.items()
    ]
    if args.no_plots:
        figures.clear()
    for name, draw in figures:
        (out / name).parent.mkdir(exist_ok=True)
        draw().savefig(out / name, dpi=120)
    sys.stdout.write(f"{tables}\n" if args.format == "md" else texts["results_env.csv"])
    print(f"{len(runs)} runs; wrote {len(texts) + len(figures)} files to {Path(args.out)}/", file=sys.stderr)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Console script ``rql-results``."""
    parser = argparse.ArgumentParser(prog="rql-results", description=__doc__.split("\n")[0])
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
    args = parser.parse_args(argv)
    return user_errors_as_one_line(lambda: _report(args))


if __name__ == "__main__":
    raise SystemExit(main())

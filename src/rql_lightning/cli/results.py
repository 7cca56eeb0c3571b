"""``rql-results``: aggregate the ``summary.json`` of ``rql-train`` runs into tables and figures.

    rql-results multirun/ --out results/          # tables printed as Markdown, files in results/
    rql-results outputs/ --format csv --by model.alpha --by data.source
    rql-results multirun/ --reference paper.csv   # the paper's numbers beside ours (results.reference)

It writes ``results.md`` (environment, task and data tables), ``results_env.csv`` (``env=average`` rows for the
average over environments), ``results_task.csv``, ``runs.csv`` (one row per run used), ``overview.png`` (final
success per environment and method) and ``curves/<env>.png`` (learning curves, one per environment). With a
reference, ``results.md`` ends with the comparison and ``results_reference.csv`` holds it. Runs that logged the
premise diagnostics add ``diagnostics.md`` (each tag's last value per method and task) and
``diagnostics/<tag>.png`` (its curve, e.g. ``diagnostics/diag_q_ratio.png``).

How runs are told apart and pooled: :mod:`rql_lightning.results`. Bad input (a missing directory, no runs,
a ``--by`` key that is not dotted or in no run, a malformed reference CSV) is one ``error:`` line and exit
code 2.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path

from matplotlib.figure import Figure

from rql_lightning.cli.common import user_errors_as_one_line
from rql_lightning.results import ResultsInputError, Run, aggregate, load_reference, load_runs
from rql_lightning.results.aggregate import Results, diagnostic_curves
from rql_lightning.results.plots import plot_curves, plot_diagnostic, plot_overview
from rql_lightning.results.reference import compare, reference_rows, unmatched
from rql_lightning.results.tables import csv_text, diagnostics_markdown, env_rows, run_rows, task_rows, to_markdown


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


def _figures(runs: Sequence[Run], res: Results, diagnostics: dict) -> Iterator[tuple[str, Figure]]:
    """(file name, figure) of every figure, drawn one at a time."""
    yield "overview.png", plot_overview(res)
    for env in res.envs:
        yield f"curves/{env}.png", plot_curves(runs, env)
    for tag, curves in diagnostics.items():
        yield f"diagnostics/{tag.replace('/', '_')}.png", plot_diagnostic(tag, curves)


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
    written = list(texts)
    for name, fig in () if args.no_plots else _figures(runs, res, diagnostics):
        (out / name).parent.mkdir(exist_ok=True)
        fig.savefig(out / name, dpi=120)
        written.append(name)
    sys.stdout.write(f"{tables}\n" if args.format == "md" else texts["results_env.csv"])
    print(f"{len(runs)} runs; wrote {len(written)} files to {Path(args.out)}/", file=sys.stderr)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Console script ``rql-results``."""
    args = build_parser().parse_args(argv)
    return user_errors_as_one_line(lambda: _report(args))


if __name__ == "__main__":
    raise SystemExit(main())

"""Writing the report: tables (Markdown, CSV) and figures (PNG) into one output directory.

``results.md`` (environment, task and data tables), ``results_env.csv`` (``env=average`` rows for the
average over environments), ``results_task.csv``, ``runs.csv`` (one row per run used), ``overview.png``
(final success per environment and method) and ``curves/<env>.png`` (learning curves, one per environment).
With a reference (:mod:`~rql_lightning.results.reference`), ``results.md`` ends with the comparison and
``results_reference.csv`` holds it.
Runs that logged the premise diagnostics add ``diagnostics.md`` (each tag's last value per method and task)
and ``diagnostics/<tag>.png`` (its curve, e.g. ``diagnostics/diag_q_ratio.png``).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from rql_lightning.results.aggregate import Results, aggregate
from rql_lightning.results.diagnostics_report import diagnostic_curves, diagnostics_markdown, plot_diagnostic
from rql_lightning.results.load import Run
from rql_lightning.results.plots import plot_curves, plot_overview
from rql_lightning.results.reference import REFERENCE_FIELDS, Reference, compare, reference_rows
from rql_lightning.results.tables import (
    ENV_FIELDS,
    RUN_FIELDS,
    TASK_FIELDS,
    csv_text,
    env_rows,
    run_rows,
    task_rows,
    to_markdown,
)

__all__ = ["write_results"]


def write_results(
    runs: Sequence[Run],
    out: str | Path,
    results: Results | None = None,
    plots: bool = True,
    notes: Sequence[str] = (),
    reference: Reference | None = None,
) -> list[Path]:
    """Write the tables and, with ``plots``, the figures; ``results`` is :func:`aggregate` of ``runs`` when given.

    Returns the paths written.
    """
    res = aggregate(runs) if results is None else results
    out = Path(out).expanduser()
    out.mkdir(parents=True, exist_ok=True)
    md = f"# Results\n\n{to_markdown(res, reference)}\n{len(runs)} runs from `summary.json` files.\n"
    if notes:
        md += "\nLeft out:\n\n" + "\n".join(f"- {n}" for n in notes) + "\n"
    files = {
        "results.md": md,
        "results_env.csv": csv_text(env_rows(res), ENV_FIELDS),
        "results_task.csv": csv_text(task_rows(res), TASK_FIELDS),
        "runs.csv": csv_text(run_rows(runs), RUN_FIELDS),
    }
    if reference is not None:
        files["results_reference.csv"] = csv_text(reference_rows(compare(res, reference)), REFERENCE_FIELDS)
    written = []
    for name, text in files.items():
        (out / name).write_text(text)
        written.append(out / name)
    if plots:
        plot_overview(res).savefig(out / "overview.png", dpi=120)
        written.append(out / "overview.png")
        (out / "curves").mkdir(exist_ok=True)
        for env in res.envs:
            plot_curves(runs, env).savefig(out / "curves" / f"{env}.png", dpi=120)
            written.append(out / "curves" / f"{env}.png")
    written += _write_diagnostics(runs, out, plots)
    return written


def _write_diagnostics(runs: Sequence[Run], out: Path, plots: bool) -> list[Path]:
    curves = diagnostic_curves(runs)
    if not curves:
        return []
    (out / "diagnostics.md").write_text(f"# Premise diagnostics\n\n{diagnostics_markdown(curves)}")
    written = [out / "diagnostics.md"]
    if plots:
        (out / "diagnostics").mkdir(exist_ok=True)
        for tag, by_key in curves.items():
            path = out / "diagnostics" / (tag.replace("/", "_") + ".png")
            plot_diagnostic(tag, by_key).savefig(path, dpi=120)
            written.append(path)
    return written

"""Results: the runs' ``summary.json`` files -> the paper's tables, learning curves and an overview figure.

Every run of ``rql-train`` leaves ``<run dir>/summary.json`` (:mod:`rql_lightning.callbacks.summary`). The
parts, in the order data flows:

- :mod:`~rql_lightning.results.identity`: what a run is (short model name, the data it trained on);
- :mod:`~rql_lightning.results.load`: finding the summaries under a directory (single runs under
  ``outputs/``, sweeps under ``multirun/<time>/<job>/``, any mix) and choosing the runs that count;
- :mod:`~rql_lightning.results.aggregate`: pooling seeds, tasks and environments the way the paper does;
- :mod:`~rql_lightning.results.reference`: a reference table (the paper's numbers) beside the aggregate;
- :mod:`~rql_lightning.results.tables` and :mod:`~rql_lightning.results.plots`: Markdown/CSV and figures;
- :mod:`~rql_lightning.results.diagnostics_report`: the runs' ``diag/*`` curves from their TensorBoard files;
- :mod:`~rql_lightning.results.report`: writing them all into one directory (what ``rql-results`` does).

Used from a notebook::

    runs, notes = load_runs("multirun", by=["model.alpha"])
    res = aggregate(runs)
    display(Markdown(env_markdown(res))); display(plot_overview(res))
"""

from rql_lightning.results.aggregate import Results, Stat, aggregate, learning_curves
from rql_lightning.results.diagnostics_report import (
    diagnostic_curves,
    diagnostics_markdown,
    plot_diagnostic,
    run_diagnostics,
)
from rql_lightning.results.identity import DataId, data_identity, model_name
from rql_lightning.results.load import ResultsInputError, Run, check_by_keys, load_runs, load_summaries, select_runs
from rql_lightning.results.plots import format_steps, plot_curves, plot_overview
from rql_lightning.results.reference import Reference, compare, load_reference, reference_markdown
from rql_lightning.results.report import write_results
from rql_lightning.results.tables import data_markdown, env_markdown, task_markdown, to_markdown

__all__ = [
    "DataId",
    "Reference",
    "Results",
    "ResultsInputError",
    "Run",
    "Stat",
    "aggregate",
    "check_by_keys",
    "compare",
    "data_identity",
    "data_markdown",
    "diagnostic_curves",
    "diagnostics_markdown",
    "env_markdown",
    "format_steps",
    "learning_curves",
    "load_reference",
    "load_runs",
    "load_summaries",
    "model_name",
    "run_diagnostics",
    "plot_curves",
    "plot_diagnostic",
    "plot_overview",
    "reference_markdown",
    "select_runs",
    "task_markdown",
    "to_markdown",
    "write_results",
]

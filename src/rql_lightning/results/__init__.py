"""Results: the runs' ``summary.json`` files -> the paper's tables, learning curves and an overview figure.

Every run of ``rql-train`` leaves ``<run dir>/summary.json`` (:mod:`rql_lightning.callbacks.summary`). The
parts, in the order data flows:

- :mod:`~rql_lightning.results.load`: what a run is (short model name, the data it trained on), finding the
  summaries under a directory (single runs under ``outputs/``, sweeps under ``multirun/<time>/<job>/``, any mix),
  choosing the runs that count, and reading a run's premise diagnostics from its TensorBoard files;
- :mod:`~rql_lightning.results.aggregate`: pooling seeds, tasks and environments the way the paper does;
- :mod:`~rql_lightning.results.reference`: a reference table (the paper's numbers) beside the aggregate;
- :mod:`~rql_lightning.results.tables` and :mod:`~rql_lightning.results.plots`: Markdown/CSV and figures.

``rql-results`` (:mod:`rql_lightning.cli.results`) writes them all into one directory. Used from a notebook::

    runs, notes = load_runs("multirun", by=["model.alpha"])
    res = aggregate(runs)
    display(Markdown(env_markdown(res))); display(plot_overview(res))
"""

from rql_lightning.results.aggregate import Results, Stat, aggregate, diagnostic_curves, learning_curves
from rql_lightning.results.load import DataId, ResultsInputError, Run, load_runs, model_name, run_diagnostics
from rql_lightning.results.plots import format_steps, plot_curves, plot_diagnostic, plot_overview
from rql_lightning.results.reference import Reference, compare, load_reference, reference_markdown
from rql_lightning.results.tables import data_markdown, diagnostics_markdown, env_markdown, task_markdown, to_markdown

__all__ = [
    "DataId",
    "Reference",
    "Results",
    "ResultsInputError",
    "Run",
    "Stat",
    "aggregate",
    "compare",
    "data_markdown",
    "diagnostic_curves",
    "diagnostics_markdown",
    "env_markdown",
    "format_steps",
    "learning_curves",
    "load_reference",
    "load_runs",
    "model_name",
    "run_diagnostics",
    "plot_curves",
    "plot_diagnostic",
    "plot_overview",
    "reference_markdown",
    "task_markdown",
    "to_markdown",
]

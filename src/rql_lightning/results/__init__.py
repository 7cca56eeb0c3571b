"""Results: the runs' ``summary.json`` files -> the paper's tables (``tables``), figures (``plots``) and a
reference beside them (``reference``); ``load`` finds and names the runs, ``aggregate`` pools them as the paper
does. ``rql-results`` writes them all; in a notebook: ``aggregate(load_runs("multirun")[0])``."""

# ruff: noqa: F401 (the imports below are the package's API)

from rql_lightning.results.aggregate import Results, Stat, aggregate, diagnostic_curves, learning_curves
from rql_lightning.results.load import DataId, ResultsInputError, Run, load_runs, model_name, run_diagnostics
from rql_lightning.results.plots import format_steps, plot_curves, plot_diagnostic, plot_overview
from rql_lightning.results.reference import Reference, compare, load_reference, reference_markdown
from rql_lightning.results.tables import data_markdown, diagnostics_markdown, env_markdown, task_markdown, to_markdown

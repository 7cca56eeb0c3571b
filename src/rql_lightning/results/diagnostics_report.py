"""The premise diagnostics of the runs (``diag/*``, :mod:`rql_lightning.callbacks.premise_diagnostics`), read back from
their TensorBoard event files: curves per tag, pooled over seeds like the success rates, and the final values.

Where they are: a single run logs ``diag/<name>`` to ``<run>/tensorboard``; seed ``s`` of a seed-batched job
logs ``seed<s>/diag/<name>`` to ``<job>/tensorboard`` (its ``summary.json`` is ``<job>/seed<s>/summary.json``).
Both are found from the run's directory alone, so a moved results tree still reads. Runs without
diagnostics (``diag_every=0``, flow BC's runs) simply have none.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from rql_lightning.results.aggregate import pool_by_step
from rql_lightning.results.load import Run
from rql_lightning.results.plots import mean_band, step_axis

__all__ = ["run_diagnostics", "diagnostic_curves", "plot_diagnostic", "diagnostics_markdown"]

PREFIX = "diag/"
Curve = tuple[np.ndarray, np.ndarray, np.ndarray]  # steps, mean over seeds, s.e. over seeds


def _log_dir(run: Run) -> tuple[Path, str]:
    """The event directory holding ``run``'s scalars, and the tag prefix of its replica (``""`` for a single run)."""
    if run.task_batched:  # <job>/task<t>/seed<s>/summary.json
        return run.path.parent.parent / "tensorboard", f"task{run.task_id}/seed{run.seed}/"
    if run.seed_batched:
        return run.path.parent / "tensorboard", f"seed{run.seed}/"
    return run.path / "tensorboard", ""


def run_diagnostics(run: Run, _cache: dict | None = None) -> dict[str, list[tuple[int, float]]]:
    """``diag/<name> -> [(step, value)]`` of one run (empty when it logged none)."""
    log_dir, prefix = _log_dir(run)
    if not log_dir.is_dir():
        return {}
    cache = {} if _cache is None else _cache
    if log_dir not in cache:
        acc = EventAccumulator(str(log_dir), size_guidance={"scalars": 0})
        acc.Reload()
        cache[log_dir] = {tag: [(e.step, e.value) for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}
    wanted = prefix + PREFIX
    return {tag.removeprefix(prefix): series for tag, series in cache[log_dir].items() if tag.startswith(wanted)}


def diagnostic_curves(runs: Iterable[Run]) -> dict[str, dict[tuple[str, str, int], Curve]]:
    """``diag/<name> -> (method, env, task) -> (steps, mean, s.e.)`` over the seeds logged at each step."""
    grouped: dict[str, dict[tuple, dict[int, list[float]]]] = defaultdict(
        lambda: defaultdict(lambda: defaultdict(list))
    )
    cache: dict = {}
    for run in runs:
        for tag, series in run_diagnostics(run, cache).items():
            for step, value in series:
                grouped[tag][(run.method, run.env, run.task_id)][int(step)].append(float(value))
    return {tag: {key: pool_by_step(by_key[key]) for key in sorted(by_key)} for tag, by_key in sorted(grouped.items())}


def plot_diagnostic(tag: str, curves: dict[tuple[str, str, int], Curve]) -> Figure:
    """One ``diag/`` tag: a panel per (environment, task), a line per method, mean ± s.e. over seeds."""
    panels = sorted({(env, tid) for (_, env, tid) in curves})
    methods = sorted({m for (m, _, _) in curves})
    max_step = max(float(steps.max()) for steps, _, _ in curves.values())
    fig = Figure(figsize=(4.2 * len(panels), 3.2), layout="constrained")
    axes = fig.subplots(1, len(panels), sharey=True, squeeze=False)[0]
    for ax, (env, tid) in zip(axes, panels, strict=True):
        for i, method in enumerate(methods):
            if (method, env, tid) not in curves:
                continue
            mean_band(ax, *curves[(method, env, tid)], f"C{i % 10}", method)
        ax.set_title(f"{tag}: {env} task {tid}", fontsize=9)
        step_axis(ax, max_step)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    return fig


def diagnostics_markdown(curves: dict[str, dict[tuple[str, str, int], Curve]], tags: Sequence[str] = ()) -> str:
    """The last logged value of each tag (rows) per method and task (columns), mean ± s.e. over seeds."""
    tags = list(tags) or list(curves)
    columns = sorted({key for tag in tags for key in curves.get(tag, {})})
    if not columns:
        return ""
    head = "| diagnostic | " + " | ".join(f"{m}, task {tid}" for (m, _, tid) in columns) + " |"
    lines = [head, "|---" * (len(columns) + 1) + "|"]
    for tag in tags:
        cells = []
        for key in columns:
            curve = curves.get(tag, {}).get(key)
            if curve is None:
                cells.append("")
                continue
            _, mean, se = curve
            cells.append(f"{mean[-1]:.3g}" + ("" if math.isnan(se[-1]) else f" ± {se[-1]:.2g}"))
        lines.append(f"| `{tag}` | " + " | ".join(cells) + " |")
    envs = sorted({env for (_, env, _) in columns})
    steps = sorted({int(curves[t][k][0][-1]) for t in tags for k in curves.get(t, {})})
    return "\n".join(lines) + f"\n\nAt step {', '.join(map(str, steps))} on {', '.join(envs)}; ± one s.e. over seeds.\n"

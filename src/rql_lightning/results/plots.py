"""Figures, built without pyplot (no global matplotlib state): learning curves, an overview bar chart, premise
diagnostics. Step axes are training batches (``100k``, ``1.5M``) from 0, so one evaluation is a point at its step."""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable

import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, MaxNLocator

from rql_lightning.results.aggregate import Curve, Results, learning_curves
from rql_lightning.results.load import Run


def format_steps(x: float, _pos: int | None = None) -> str:
    """A step count for an axis: ``0``, ``500``, ``2.5k``, ``100k``, ``1M``."""
    for scale, suffix in ((1e6, "M"), (1e3, "k")):
        if abs(x) >= scale:
            return f"{x / scale:.3g}{suffix}"
    return f"{x:.3g}"


def _panels(panels: dict[str, list[tuple[str, str, Curve]]]) -> Figure:
    """A row of panels (title -> lines of (label, colour, curve)): means, bands of ± one s.e., a shared step axis."""
    max_step = max((float(curve[0].max()) for lines in panels.values() for _, _, curve in lines), default=1.0)
    fig = Figure(figsize=(4.5 * len(panels), 3.4), layout="constrained")
    axes = fig.subplots(1, len(panels), sharey=True, squeeze=False)[0]
    for ax, (title, lines) in zip(axes, panels.items(), strict=True):
        for label, color, (steps, mean, se) in lines:
            ax.plot(steps, mean, marker="o", markersize=4, color=color, label=label)
            band = np.nan_to_num(se)
            ax.fill_between(steps, mean - band, mean + band, color=color, alpha=0.2, linewidth=0)
        ax.set_title(title, fontsize=10)
        ax.xaxis.set_major_locator(MaxNLocator(nbins=5, integer=True, min_n_ticks=2))
        ax.xaxis.set_major_formatter(FuncFormatter(format_steps))
        ax.set_xlim(0, max(max_step, 1) * 1.05)
        ax.set_xlabel("training step")
        ax.grid(alpha=0.3)
        if lines:
            ax.legend(fontsize=8)
    return fig


def plot_curves(runs: Iterable[Run], env: str) -> Figure:
    """Learning curves of one environment: one panel per method, one line per task, mean ± s.e. over seeds."""
    panels: dict[str, list] = defaultdict(list)
    for (method, _, tid), (steps, mean, se) in learning_curves(r for r in runs if r.env == env).items():
        color = f"C{(tid - 1) % 10}"  # the same colour for a task in every panel
        panels[f"{env}: {method}"].append((f"task {tid}", color, (steps, 100 * mean, 100 * se)))
    fig = _panels(panels or {f"{env}: (no curves)": []})
    fig.axes[0].set_ylim(-2, 102)  # shared by every panel
    fig.axes[0].set_ylabel("success rate (%)")
    return fig


def plot_diagnostic(tag: str, curves: dict[tuple[str, str, int], Curve]) -> Figure:
    """One ``diag/`` tag: a panel per (environment, task), a line per method, mean ± s.e. over seeds."""
    methods = sorted({m for (m, _, _) in curves})
    panels: dict[str, list] = defaultdict(list)
    for (method, env, tid), curve in sorted(curves.items(), key=lambda kv: (kv[0][1], kv[0][2], kv[0][0])):
        panels[f"{tag}: {env} task {tid}"].append((method, f"C{methods.index(method) % 10}", curve))
    return _panels(panels)


def plot_overview(res: Results) -> Figure:
    """Final success per environment per method (the paper's bar chart), ± one s.e.; then the average over envs."""
    groups = [*res.envs, "average"] if len(res.envs) > 1 else list(res.envs)
    methods = res.methods or ["(no runs)"]
    width = 0.8 / len(methods)
    size = (max(4.5, 2.5 + len(groups) * (0.35 + 0.3 * len(methods))), 3.6)
    fig = Figure(figsize=size, layout="constrained")
    ax = fig.subplots()
    x = np.arange(len(groups))
    for i, m in enumerate(methods):
        stats = [res.average.get(m) if g == "average" else res.env.get((m, g)) for g in groups]
        heights = [math.nan if s is None else 100 * s.mean for s in stats]
        errors = [math.nan if s is None else 100 * s.se for s in stats]  # NaN: no bar (one seed)
        offset = (i - (len(methods) - 1) / 2) * width
        bars = ax.bar(x + offset, heights, width, yerr=errors, capsize=3, label=m, color=f"C{i % 10}")
        ax.bar_label(bars, fmt="%.0f", fontsize=7, padding=2)  # a zero bar still reads "0"
    ax.set_xticks(x, groups, rotation=20 if len(groups) > 3 else 0, ha="right" if len(groups) > 3 else "center")
    ax.set_ylabel("final success rate (%)")
    ax.set_ylim(0, 110)
    ax.set_title("Final success rate, mean ± s.e. over seeds", fontsize=10)
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    return fig

"""Pooling final success rates the way the paper does, per table column (:func:`~.load.label_runs`): a task's mean
and s.e. over its seeds (ddof=1); an environment's mean of its task means, with the s.e. over seeds of each seed's
mean over the tasks it ran; the average likewise over environments. One seed: s.e. NaN. Curves pool per step."""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from rql_lightning.results.load import Run, run_diagnostics

Curve = tuple[np.ndarray, np.ndarray, np.ndarray]  # steps, mean over seeds, s.e. over seeds


@dataclass(frozen=True)
class Stat:
    """Mean and standard error of a success rate (fractions), and what was pooled (``n_seeds=0``: a reference)."""

    mean: float
    se: float  # NaN with fewer than 2 seeds
    n_seeds: int
    n_tasks: int = 1
    n_runs: int = 1
    n_envs: int = 1

    def fmt(self) -> str:
        """In percent as the tables print it: ``62.5 ± 13.0``, the mean alone where the s.e. is undefined."""
        text = f"{100 * self.mean:.1f}"
        return text if math.isnan(self.se) else f"{text} ± {100 * self.se:.1f}"


def markdown_table(head: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    return "\n".join(lines + ["| " + " | ".join(map(str, row)) + " |" for row in rows])


def standard_error(values: Sequence[float]) -> float:
    """Sample standard deviation (ddof=1) / sqrt(n); NaN for n < 2."""
    return math.nan if len(values) < 2 else float(np.std(values, ddof=1) / math.sqrt(len(values)))


@dataclass
class Results:
    """Aggregated final success rates; keys are (method, env[, task_id]) with ``method`` a table column."""

    methods: list[str]
    envs: list[str]
    task: dict[tuple[str, str, int], Stat] = field(default_factory=dict)
    env: dict[tuple[str, str], Stat] = field(default_factory=dict)
    average: dict[str, Stat] = field(default_factory=dict)
    models: dict[str, str] = field(default_factory=dict)  # column -> short model name
    data: dict[tuple[str, str, int], str] = field(default_factory=dict)  # (column, env, task) -> data key
    sources: dict[tuple[str, str], tuple[str, ...]] = field(default_factory=dict)  # (column, env) -> sources


def _pool(parts: list[tuple[Stat, dict[int, float]]], n_envs: int = 1) -> tuple[Stat, dict[int, float]]:
    """Tasks into an environment, or environments into the average (see the module docstring); also each seed's mean."""
    per_seed: dict[int, list[float]] = defaultdict(list)
    for _, seeds in parts:
        for seed, value in seeds.items():
            per_seed[seed].append(value)
    means = {seed: float(np.mean(values)) for seed, values in per_seed.items()}
    stats = [stat for stat, _ in parts]
    n_tasks, n_runs = sum(s.n_tasks for s in stats), sum(s.n_runs for s in stats)
    mean = float(np.mean([s.mean for s in stats]))
    return Stat(mean, standard_error(list(means.values())), len(means), n_tasks, n_runs, n_envs), means


def aggregate(runs: Iterable[Run]) -> Results:
    """Pool final success rates per task, environment and column (see the module docstring for how)."""
    runs = list(runs)
    res = Results(methods=sorted({r.method for r in runs}), envs=sorted({r.env for r in runs}))
    by_task: dict[tuple[str, str, int], dict[int, float]] = defaultdict(dict)
    sources: dict[tuple[str, str], set[str]] = defaultdict(set)
    for r in runs:
        by_task[(r.method, r.env, r.task_id)][r.seed] = r.success_rate
        res.models[r.method] = r.model
        res.data[(r.method, r.env, r.task_id)] = r.data.key
        sources[(r.method, r.env)].add(r.data.source)
    res.sources = {key: tuple(sorted(s)) for key, s in sources.items()}
    tasks: dict[tuple[str, str], list] = defaultdict(list)  # (method, env) -> [(task's Stat, {seed: success})]
    for (m, env, tid), seeds in by_task.items():
        values = list(seeds.values())
        res.task[(m, env, tid)] = Stat(float(np.mean(values)), standard_error(values), len(values), n_runs=len(values))
        tasks[(m, env)].append((res.task[(m, env, tid)], seeds))
    envs: dict[str, list] = defaultdict(list)  # method -> [(env's Stat, {seed: mean over the env's tasks})]
    for (m, env), parts in tasks.items():
        res.env[(m, env)], seed_means = _pool(parts)
        envs[m].append((res.env[(m, env)], seed_means))
    for m, parts in envs.items():
        res.average[m] = _pool(parts, n_envs=len(parts))[0]
    return res


def learning_curves(runs: Iterable[Run], series: Sequence | None = None) -> dict[tuple[str, str, int], Curve]:
    """(method, env, task) -> (steps, mean, s.e.) over the seeds at each step of each run's ``[(step, value)]`` in
    ``series`` (default: its success rate at every evaluation)."""
    runs = list(runs)
    grouped: dict[tuple[str, str, int], dict[int, list[float]]] = defaultdict(lambda: defaultdict(list))
    for run, points in zip(runs, [r.curve for r in runs] if series is None else series, strict=True):
        for step, value in points:
            grouped[(run.method, run.env, run.task_id)][int(step)].append(float(value))
    curves = {}
    for key, by_step in sorted(grouped.items()):
        steps = np.array(sorted(by_step))
        mean = np.array([np.mean(by_step[s]) for s in steps])
        curves[key] = (steps, mean, np.array([standard_error(by_step[s]) for s in steps]))
    return curves


def diagnostic_curves(runs: Iterable[Run]) -> dict[str, dict[tuple[str, str, int], Curve]]:
    """``diag/<name> -> (method, env, task) -> (steps, mean, s.e.)`` of the premise diagnostics the runs logged."""
    cache: dict = {}
    runs = list(runs)
    logged = [run_diagnostics(run, cache) for run in runs]
    tags = sorted({tag for series in logged for tag in series})
    return {tag: learning_curves(runs, [series.get(tag, ()) for series in logged]) for tag in tags}

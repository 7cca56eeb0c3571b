"""Pooling final success rates the way the paper does: per task over seeds, then over tasks and environments.

For each table column (a method on its data, see :func:`rql_lightning.results.load.label_runs`):

- task ``(env, id)``: mean over its seeds; standard error = sample std over seeds (ddof=1) / sqrt(n seeds).
- environment: mean over its tasks of the task means (the paper's number). Standard error: for each seed, the
  mean over the environment's tasks that ran with that seed; then sample std of those per-seed means /
  sqrt(n seeds). With every task run on the same seeds (the normal grid), the point estimate is also the
  mean of the per-seed means.
- average: mean over environments of the environment means; standard error likewise from the per-seed
  averages over environments.

With a single seed the standard error is undefined (NaN).
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np

from rql_lightning.results.load import Run

__all__ = ["Stat", "Results", "aggregate", "learning_curves", "pool_by_step", "standard_error"]


@dataclass(frozen=True)
class Stat:
    """Mean and standard error of a success rate (fractions), and what was pooled."""

    mean: float
    se: float  # NaN with fewer than 2 seeds
    n_seeds: int
    n_tasks: int = 1
    n_runs: int = 1
    n_envs: int = 1

    def fmt(self, scale: float = 100.0, digits: int = 1) -> str:
        text = f"{scale * self.mean:.{digits}f}"
        return text if math.isnan(self.se) else f"{text} ± {scale * self.se:.{digits}f}"


def standard_error(values: Sequence[float]) -> float:
    """Sample standard deviation (ddof=1) / sqrt(n); NaN for n < 2."""
    if len(values) < 2:
        return math.nan
    return float(np.std(values, ddof=1) / math.sqrt(len(values)))


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


def _pool_per_seed(groups: Iterable[dict[int, float]]) -> dict[int, float]:
    """Each seed's mean over the groups (tasks, or environments) that ran with that seed."""
    per_seed: dict[int, list[float]] = defaultdict(list)
    for seeds in groups:
        for seed, value in seeds.items():
            per_seed[seed].append(value)
    return {seed: float(np.mean(v)) for seed, v in per_seed.items()}


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

    for key, seeds in by_task.items():
        values = list(seeds.values())
        res.task[key] = Stat(float(np.mean(values)), standard_error(values), n_seeds=len(values), n_runs=len(values))

    for m in res.methods:
        env_seed_means: dict[str, dict[int, float]] = {}
        for env in res.envs:
            tasks = {tid: seeds for (mm, e, tid), seeds in by_task.items() if mm == m and e == env}
            if not tasks:
                continue
            seed_means = env_seed_means[env] = _pool_per_seed(tasks.values())
            mean = float(np.mean([res.task[(m, env, tid)].mean for tid in tasks]))
            n_runs = sum(len(s) for s in tasks.values())
            res.env[(m, env)] = Stat(
                mean, standard_error(list(seed_means.values())), len(seed_means), len(tasks), n_runs
            )
        if env_seed_means:
            per_seed = _pool_per_seed(env_seed_means.values())
            stats = [res.env[(m, env)] for env in env_seed_means]
            res.average[m] = Stat(
                float(np.mean([s.mean for s in stats])),
                standard_error(list(per_seed.values())),
                n_seeds=len(per_seed),
                n_tasks=sum(s.n_tasks for s in stats),
                n_runs=sum(s.n_runs for s in stats),
                n_envs=len(stats),
            )
    return res


def learning_curves(runs: Iterable[Run]) -> dict[tuple[str, str, int], tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """(method, env, task) -> (steps, mean, s.e.) of the success rate over seeds at each evaluation step.

    Steps are the union over seeds; each point pools the seeds evaluated at that step (s.e. NaN if one).
    """
    grouped: dict[tuple[str, str, int], dict[int, list[float]]] = defaultdict(lambda: defaultdict(list))
    for r in runs:
        for step, value in r.curve:
            grouped[(r.method, r.env, r.task_id)][step].append(value)
    return {key: pool_by_step(points) for key, points in grouped.items()}


def pool_by_step(points: dict[int, list[float]]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """step -> the seeds' values there  ->  (steps, mean, s.e.), sorted by step (s.e. NaN where one seed)."""
    steps = np.array(sorted(points))
    mean = np.array([np.mean(points[s]) for s in steps])
    return steps, mean, np.array([standard_error(points[s]) for s in steps])

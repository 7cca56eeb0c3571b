"""``rql-results``: the runs' ``summary.json`` files -> the paper's tables and learning curves.

    rql-results multirun/ --out results/          # tables printed as Markdown, files in results/
    rql-results outputs/ --format csv --by model.alpha

Every run of ``rql-train`` leaves ``<run dir>/summary.json`` (:mod:`rql_lightning.callbacks.summary`).
This module finds them under a directory (recursively: single runs under ``outputs/``, multirun sweeps
under ``multirun/<time>/<job>/``, or any mix), and reports the *final* success rate (the run's last
evaluation) the way the paper does.

How seeds and tasks are pooled
    A *method* is the LightningModule class (``RQLModule``, ``FQLModule``, ``FlowBCModule``), optionally
    split further by config values (``--by model.alpha``). For each method:

    - task ``(env, id)``: mean over its seeds; standard error = sample std over seeds (ddof=1) / sqrt(n seeds).
    - environment: mean over its tasks of the task means (the paper's number: per task over seeds, then over
      the 5 tasks). Standard error: for each seed, the mean over the environment's tasks that ran with that
      seed; then sample std of those per-seed means / sqrt(n seeds). With every task run on the same seeds
      (the normal grid), the point estimate is also the mean of the per-seed means.
    - average: mean over environments of the environment means; standard error likewise from the per-seed
      averages over environments (each seed's mean over the environments' per-seed means).

    With a single seed the standard error is undefined (NaN in CSV, left out in Markdown).
    Only runs whose summary says ``finished`` with a success rate count (``--include-unfinished`` takes the
    last evaluation of running/failed runs too). When the same (method, env, task, seed) appears more than
    once, the most recently updated run is used and the others are listed as ignored.

Outputs (``--out DIR``)
    ``results.md`` (both tables), ``results_env.csv`` (method, env, mean, s.e., counts; ``env=average`` rows
    for the average over environments), ``results_task.csv`` (per task), ``runs.csv`` (one row per run used),
    and ``curves/<env>.png``: success rate vs training step, mean ± s.e. over seeds, one line per task, one
    panel per method. CSV success values are fractions in [0, 1]; Markdown shows percentages.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import math
import sys
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "Run",
    "Stat",
    "Results",
    "load_summaries",
    "select_runs",
    "load_runs",
    "aggregate",
    "plot_curves",
    "write_results",
    "main",
]

SUMMARY_FILENAME = "summary.json"


# ------------------------------------------------------------------------------------------- loading


@dataclass(frozen=True)
class Run:
    """One run's final result, as read from its ``summary.json``."""

    method: str
    env: str
    task_id: int
    seed: int
    success_rate: float
    mean_return: float | None
    step: int
    eval_step: int | None
    status: str
    curve: tuple[tuple[int, float], ...]  # (training batch, success rate) of every evaluation
    path: Path  # the run directory
    updated_at: str = ""


def load_summaries(runs_dir: str | Path) -> list[dict[str, Any]]:
    """Every ``summary.json`` under ``runs_dir`` (recursively), each with ``_path`` = its run directory.

    Unreadable files are skipped with a message on stderr.
    """
    summaries = []
    for path in sorted(Path(runs_dir).expanduser().rglob(SUMMARY_FILENAME)):
        try:
            summary = json.loads(path.read_text())
        except (OSError, ValueError) as err:
            print(f"rql-results: skipping {path}: {err}", file=sys.stderr)
            continue
        if isinstance(summary, dict):
            summary["_path"] = str(path.parent)
            summaries.append(summary)
    return summaries


def _lookup(config: dict[str, Any] | None, dotted: str) -> Any:
    node: Any = config
    for key in dotted.split("."):
        if not isinstance(node, dict) or key not in node:
            return "?"
        node = node[key]
    return node


def method_label(summary: dict[str, Any], by: Sequence[str] = ()) -> str:
    """The model class name, plus ``name=value`` for each config key in ``by`` (``model.alpha`` -> ``alpha=3``)."""
    label = str(summary.get("model") or "?")
    extra = [f"{key.rsplit('.', 1)[-1]}={_lookup(summary.get('config'), key)}" for key in by]
    return " ".join([label, *extra])


def select_runs(
    summaries: Iterable[dict[str, Any]], by: Sequence[str] = (), include_unfinished: bool = False
) -> tuple[list[Run], list[str]]:
    """The runs that count, and one note per summary left out (unfinished, incomplete, duplicate)."""
    notes: list[str] = []
    chosen: dict[tuple[str, str, int, int], Run] = {}
    for s in summaries:
        where = s.get("_path", "?")
        if s.get("task") is None or s.get("task_id") is None or s.get("seed") is None:
            notes.append(f"{where}: no task/task_id/seed recorded")
            continue
        status = str(s.get("status", "?"))
        if s.get("success_rate") is None:
            notes.append(f"{where}: no evaluation yet ({status})")
            continue
        if status != "finished" and not include_unfinished:
            notes.append(f"{where}: {status} (use --include-unfinished to count its last evaluation)")
            continue
        curve = tuple(
            (int(p["step"]), float(p["success_rate"]))
            for p in s.get("curve") or []
            if p.get("success_rate") is not None
        )
        run = Run(
            method=method_label(s, by),
            env=str(s["task"]),
            task_id=int(s["task_id"]),
            seed=int(s["seed"]),
            success_rate=float(s["success_rate"]),
            mean_return=None if s.get("return") is None else float(s["return"]),
            step=int(s.get("step") or 0),
            eval_step=None if s.get("eval_step") is None else int(s["eval_step"]),
            status=status,
            curve=curve,
            path=Path(where),
            updated_at=str(s.get("updated_at") or ""),
        )
        key = (run.method, run.env, run.task_id, run.seed)
        old = chosen.get(key)
        if old is not None:
            keep, drop = (run, old) if (run.updated_at, str(run.path)) > (old.updated_at, str(old.path)) else (old, run)
            notes.append(f"{drop.path}: duplicate of {keep.path} ({'/'.join(map(str, key))}), older: ignored")
            run = keep
        chosen[key] = run
    runs = sorted(chosen.values(), key=lambda r: (r.method, r.env, r.task_id, r.seed))
    return runs, notes


def load_runs(
    runs_dir: str | Path, by: Sequence[str] = (), include_unfinished: bool = False
) -> tuple[list[Run], list[str]]:
    """:func:`load_summaries` then :func:`select_runs`."""
    return select_runs(load_summaries(runs_dir), by=by, include_unfinished=include_unfinished)


# --------------------------------------------------------------------------------------- statistics


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


def _se(values: Sequence[float]) -> float:
    """Sample standard deviation (ddof=1) / sqrt(n); NaN for n < 2."""
    if len(values) < 2:
        return math.nan
    return float(np.std(values, ddof=1) / math.sqrt(len(values)))


@dataclass
class Results:
    """Aggregated final success rates; keys are (method, env[, task_id])."""

    methods: list[str]
    envs: list[str]
    task: dict[tuple[str, str, int], Stat] = field(default_factory=dict)
    env: dict[tuple[str, str], Stat] = field(default_factory=dict)
    average: dict[str, Stat] = field(default_factory=dict)

    # ---------------------------------------------------------------- markdown

    def env_markdown(self) -> str:
        """Rows: environments and their average; columns: methods; cells: mean ± s.e. in percent."""
        grids = Counter((s.n_tasks, s.n_seeds) for s in self.env.values())
        usual = grids.most_common(1)[0][0] if grids else (0, 0)
        lines = [
            "| environment | " + " | ".join(self.methods) + " |",
            "|---|" + "---|" * len(self.methods),
        ]
        for env in self.envs:
            cells = []
            for m in self.methods:
                s = self.env.get((m, env))
                if s is None:
                    cells.append("")
                else:
                    grid = "" if (s.n_tasks, s.n_seeds) == usual else f" ({s.n_tasks}×{s.n_seeds})"
                    cells.append(s.fmt() + grid)
            lines.append(f"| {env} | " + " | ".join(cells) + " |")
        cells = []
        for m in self.methods:
            s = self.average.get(m)
            if s is None:
                cells.append("")
            else:
                cells.append(s.fmt() + ("" if s.n_envs == len(self.envs) else f" ({s.n_envs} of {len(self.envs)})"))
        envs = f"{len(self.envs)} env" + ("s" if len(self.envs) != 1 else "")
        lines.append(f"| **average ({envs})** | " + " | ".join(cells) + " |")
        caption = (
            f"Final success rate (%), mean ± standard error over seeds; each cell pools {usual[0]} task(s) × "
            f"{usual[1]} seed(s) unless marked (tasks×seeds); an average over fewer environments is marked (k of n)."
        )
        return caption + "\n\n" + "\n".join(lines)

    def task_markdown(self) -> str:
        """Rows: (environment, task); columns: methods; cells: mean ± s.e. over seeds (n seeds) in percent."""
        lines = [
            "| environment | task | " + " | ".join(self.methods) + " |",
            "|---|---|" + "---|" * len(self.methods),
        ]
        keys = sorted({(env, tid) for (_, env, tid) in self.task}, key=lambda k: (self.envs.index(k[0]), k[1]))
        for env, tid in keys:
            cells = []
            for m in self.methods:
                s = self.task.get((m, env, tid))
                cells.append("" if s is None else f"{s.fmt()} (n={s.n_seeds})")
            lines.append(f"| {env} | {tid} | " + " | ".join(cells) + " |")
        return "Final success rate (%) per task, mean ± standard error over n seeds.\n\n" + "\n".join(lines)

    def to_markdown(self) -> str:
        return (
            "## Success rate by environment\n\n"
            + self.env_markdown()
            + "\n\n## Success rate by task\n\n"
            + self.task_markdown()
            + "\n"
        )

    # --------------------------------------------------------------------- csv

    def env_rows(self) -> list[dict[str, Any]]:
        rows = []
        for m in self.methods:
            for env in self.envs:
                if (m, env) in self.env:
                    rows.append(_stat_row({"method": m, "env": env}, self.env[(m, env)]))
            if m in self.average:
                rows.append(_stat_row({"method": m, "env": "average"}, self.average[m]))
        return rows

    def task_rows(self) -> list[dict[str, Any]]:
        return [
            _stat_row({"method": m, "env": env, "task_id": tid}, s, counts=("n_seeds",))
            for (m, env, tid), s in sorted(
                self.task.items(), key=lambda kv: (kv[0][0], self.envs.index(kv[0][1]), kv[0][2])
            )
        ]


def _stat_row(keys: dict[str, Any], s: Stat, counts: Sequence[str] = ("n_envs", "n_tasks", "n_seeds", "n_runs")):
    stats = {"success_mean": round(s.mean, 6), "success_se": round(s.se, 6)}
    return {**keys, **stats, **{c: getattr(s, c) for c in counts}}


def aggregate(runs: Iterable[Run]) -> Results:
    """Pool final success rates per task, environment and method (see the module docstring for how)."""
    runs = list(runs)
    methods = sorted({r.method for r in runs})
    envs = sorted({r.env for r in runs})
    by_task: dict[tuple[str, str, int], dict[int, float]] = defaultdict(dict)
    for r in runs:
        by_task[(r.method, r.env, r.task_id)][r.seed] = r.success_rate
    res = Results(methods=methods, envs=envs)

    for key, seeds in by_task.items():
        values = list(seeds.values())
        res.task[key] = Stat(float(np.mean(values)), _se(values), n_seeds=len(values), n_runs=len(values))

    # per (method, env): per-seed means over tasks, kept for the average over environments
    env_seed_means: dict[tuple[str, str], dict[int, float]] = {}
    for m in methods:
        for env in envs:
            tasks = {tid: seeds for (mm, e, tid), seeds in by_task.items() if mm == m and e == env}
            if not tasks:
                continue
            per_seed: dict[int, list[float]] = defaultdict(list)
            for seeds in tasks.values():
                for seed, value in seeds.items():
                    per_seed[seed].append(value)
            seed_means = {seed: float(np.mean(v)) for seed, v in per_seed.items()}
            env_seed_means[(m, env)] = seed_means
            mean = float(np.mean([res.task[(m, env, tid)].mean for tid in tasks]))
            n_runs = sum(len(s) for s in tasks.values())
            res.env[(m, env)] = Stat(mean, _se(list(seed_means.values())), len(seed_means), len(tasks), n_runs)

        m_envs = [env for env in envs if (m, env) in res.env]
        if m_envs:
            per_seed = defaultdict(list)
            for env in m_envs:
                for seed, value in env_seed_means[(m, env)].items():
                    per_seed[seed].append(value)
            mean = float(np.mean([res.env[(m, env)].mean for env in m_envs]))
            res.average[m] = Stat(
                mean,
                _se([float(np.mean(v)) for v in per_seed.values()]),
                n_seeds=len(per_seed),
                n_tasks=sum(res.env[(m, env)].n_tasks for env in m_envs),
                n_runs=sum(res.env[(m, env)].n_runs for env in m_envs),
                n_envs=len(m_envs),
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
    curves = {}
    for key, points in grouped.items():
        steps = np.array(sorted(points))
        curves[key] = (
            steps,
            np.array([np.mean(points[s]) for s in steps]),
            np.array([_se(points[s]) for s in steps]),
        )
    return curves


# ------------------------------------------------------------------------------------------ plotting


def plot_curves(runs: Iterable[Run], env: str):
    """Learning curves of one environment: a :class:`matplotlib.figure.Figure`, one panel per method.

    Success rate (%) vs training step, one line per task with a band of ± one standard error over seeds.
    Built without pyplot, so it changes no global matplotlib state (save it, or display it in a notebook).
    """
    from matplotlib.figure import Figure

    curves = learning_curves(r for r in runs if r.env == env)
    methods = sorted({m for (m, _, _) in curves}) or ["(no curves)"]
    fig = Figure(figsize=(4.5 * len(methods), 3.4), layout="constrained")
    axes = fig.subplots(1, len(methods), sharey=True, squeeze=False)[0]
    for ax, method in zip(axes, methods, strict=True):
        for (m, _, tid), (steps, mean, se) in sorted(curves.items()):
            if m != method:
                continue
            color = f"C{(tid - 1) % 10}"  # the same colour for a task in every panel
            ax.plot(steps, 100 * mean, marker="o", markersize=3, color=color, label=f"task {tid}")
            band = np.nan_to_num(se)
            ax.fill_between(steps, 100 * (mean - band), 100 * (mean + band), color=color, alpha=0.2)
        ax.set_title(f"{env}: {method}", fontsize=10)
        ax.set_xlabel("training step")
        ax.set_ylim(-2, 102)
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=8)
    axes[0].set_ylabel("success rate (%)")
    return fig


# ------------------------------------------------------------------------------------------- writing


def _write_csv(path: Path, rows: list[dict[str, Any]], fieldnames: Sequence[str]) -> None:
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(fieldnames), lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)


RUN_FIELDS = ["method", "env", "task_id", "seed", "success_rate", "return", "step", "eval_step", "status", "path"]


def _run_rows(runs: Iterable[Run]) -> list[dict[str, Any]]:
    return [
        {
            "method": r.method,
            "env": r.env,
            "task_id": r.task_id,
            "seed": r.seed,
            "success_rate": r.success_rate,
            "return": r.mean_return,
            "step": r.step,
            "eval_step": r.eval_step,
            "status": r.status,
            "path": str(r.path),
        }
        for r in runs
    ]


def csv_text(rows: list[dict[str, Any]]) -> str:
    buf = io.StringIO()
    if rows:
        writer = csv.DictWriter(buf, fieldnames=list(rows[0].keys()), lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    return buf.getvalue()


def write_results(runs: Sequence[Run], out: str | Path, plots: bool = True, notes: Sequence[str] = ()) -> list[Path]:
    """Write the tables (Markdown, CSV) and, with ``plots``, one PNG of learning curves per environment."""
    out = Path(out).expanduser()
    out.mkdir(parents=True, exist_ok=True)
    res = aggregate(runs)
    written = []

    md = "# Results\n\n" + res.to_markdown()
    md += f"\n{len(runs)} runs from `summary.json` files.\n"
    if notes:
        md += "\nLeft out:\n\n" + "\n".join(f"- {n}" for n in notes) + "\n"
    (out / "results.md").write_text(md)
    written.append(out / "results.md")
    stat = ["success_mean", "success_se"]
    _write_csv(
        out / "results_env.csv", res.env_rows(), ["method", "env", *stat, "n_envs", "n_tasks", "n_seeds", "n_runs"]
    )
    _write_csv(out / "results_task.csv", res.task_rows(), ["method", "env", "task_id", *stat, "n_seeds"])
    _write_csv(out / "runs.csv", _run_rows(runs), RUN_FIELDS)
    written += [out / "results_env.csv", out / "results_task.csv", out / "runs.csv"]

    if plots:
        (out / "curves").mkdir(exist_ok=True)
        for env in res.envs:
            fig = plot_curves(runs, env)
            path = out / "curves" / f"{env}.png"
            fig.savefig(path, dpi=120)
            written.append(path)
    return written


# ---------------------------------------------------------------------------------------------- CLI


def main(argv: Sequence[str] | None = None) -> int:
    """Console script ``rql-results``."""
    parser = argparse.ArgumentParser(
        prog="rql-results",
        description="Aggregate the summary.json of rql-train runs into the paper's tables and learning curves.",
    )
    parser.add_argument("runs_dir", help="directory searched recursively for summary.json (outputs/, multirun/, ...)")
    parser.add_argument("--out", default="results", help="where tables and plots are written (default: results)")
    parser.add_argument("--format", choices=["md", "csv"], default="md", help="what is printed (default: md)")
    parser.add_argument(
        "--by",
        action="append",
        default=[],
        metavar="KEY",
        help="also split methods by this config value, e.g. --by model.alpha (repeatable)",
    )
    parser.add_argument("--include-unfinished", action="store_true", help="count running/failed runs' last evaluation")
    parser.add_argument("--no-plots", action="store_true", help="skip the learning-curve PNGs")
    args = parser.parse_args(argv)

    runs_dir = Path(args.runs_dir).expanduser()
    if not runs_dir.is_dir():
        print(f"error: {runs_dir} is not a directory", file=sys.stderr)
        return 2
    runs, notes = load_runs(runs_dir, by=args.by, include_unfinished=args.include_unfinished)
    for note in notes:
        print(f"rql-results: left out {note}", file=sys.stderr)
    if not runs:
        print(f"error: no finished run with a summary.json under {runs_dir}", file=sys.stderr)
        return 2

    written = write_results(runs, args.out, plots=not args.no_plots, notes=notes)
    res = aggregate(runs)
    if args.format == "md":
        print(res.to_markdown())
    else:
        print(csv_text(res.env_rows()), end="")
    print(f"{len(runs)} runs; wrote {len(written)} files to {Path(args.out)}/", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

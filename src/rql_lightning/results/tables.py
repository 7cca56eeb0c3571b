"""The aggregated results as the paper's tables: Markdown in percent (mean ± s.e.), CSV rows in fractions (NaN for
an undefined s.e.); and the premise diagnostics' last values."""

from __future__ import annotations

import csv
import io
import math
from collections import Counter
from collections.abc import Iterable, Sequence
from typing import Any

from rql_lightning.results.aggregate import Curve, Results, Stat, markdown_table
from rql_lightning.results.load import Run
from rql_lightning.results.reference import Reference, compare, reference_markdown


def env_markdown(res: Results) -> str:
    """Rows: environments and their average; columns: methods; cells: mean ± s.e. in percent."""
    grids = Counter((s.n_tasks, s.n_seeds) for s in res.env.values())
    usual = grids.most_common(1)[0][0] if grids else (0, 0)

    def grid(s: Stat) -> str:  # a cell pooling another grid than most
        return "" if (s.n_tasks, s.n_seeds) == usual else f" ({s.n_tasks}×{s.n_seeds})"

    def part(s: Stat) -> str:  # an average over fewer environments
        return "" if s.n_envs == len(res.envs) else f" ({s.n_envs} of {len(res.envs)})"

    def cell(s: Stat | None, mark) -> str:
        return "" if s is None else s.fmt() + mark(s)

    rows = [[env, *(cell(res.env.get((m, env)), grid) for m in res.methods)] for env in res.envs]
    envs = f"{len(res.envs)} env" + ("s" if len(res.envs) != 1 else "")
    rows.append([f"**average ({envs})**", *(cell(res.average.get(m), part) for m in res.methods)])
    caption = (
        f"Final success rate (%), mean ± standard error over seeds; each cell pools {usual[0]} task(s) × "
        f"{usual[1]} seed(s) unless marked (tasks×seeds); an average over fewer environments is marked (k of n)."
    )
    return caption + "\n\n" + markdown_table(["environment", *res.methods], rows)


def _task_table(res: Results, cell) -> str:
    """Rows: (environment, task); columns: methods; ``cell(method, env, task)``."""
    keys = sorted({(env, tid) for (_, env, tid) in res.task}, key=lambda k: (res.envs.index(k[0]), k[1]))
    rows = [[env, tid, *(cell(m, env, tid) for m in res.methods)] for env, tid in keys]
    return markdown_table(["environment", "task", *res.methods], rows)


def task_markdown(res: Results) -> str:
    """Cells: mean ± s.e. over seeds (n seeds) in percent."""

    def cell(m: str, env: str, tid: int) -> str:
        s = res.task.get((m, env, tid))
        return "" if s is None else f"{s.fmt()} (n={s.n_seeds})"

    return "Final success rate (%) per task, mean ± standard error over n seeds.\n\n" + _task_table(res, cell)


def data_markdown(res: Results) -> str:
    """What each column trained on, per task: the data key (``<source>:<dataset>#<fingerprint>``)."""
    table = _task_table(res, lambda m, env, tid: f"`{res.data[(m, env, tid)]}`" if (m, env, tid) in res.data else "")
    return "Training data of each cell (runs on different data are never pooled).\n\n" + table


def to_markdown(res: Results, reference: Reference | None = None) -> str:
    """The environment, task and data tables, each under a heading; then the comparison with a reference."""
    text = (
        f"## Success rate by environment\n\n{env_markdown(res)}\n\n"
        f"## Success rate by task\n\n{task_markdown(res)}\n\n"
        f"## Data\n\n{data_markdown(res)}\n"
    )
    if reference is not None:
        text += f"\n## Against the reference\n\n{reference_markdown(compare(res, reference), reference.path)}\n"
    return text


def _stat_row(keys: dict[str, Any], s: Stat, counts: Sequence[str]) -> dict[str, Any]:
    stats = {"success_mean": round(s.mean, 6), "success_se": round(s.se, 6)}
    return {**keys, **stats, **{c: getattr(s, c) for c in counts}}


def env_rows(res: Results) -> list[dict[str, Any]]:
    """One row per (method, env), plus ``env=average`` per method."""
    counts = ("n_envs", "n_tasks", "n_seeds", "n_runs")
    rows = []
    for m in res.methods:
        cells = [(env, res.env[(m, env)], res.sources[(m, env)]) for env in res.envs if (m, env) in res.env]
        every = sorted({source for _, _, sources in cells for source in sources})
        cells += [("average", res.average[m], every)] if m in res.average else []
        for env, stat, sources in cells:
            keys = {"method": m, "model": res.models.get(m, m), "data_source": "+".join(sources), "env": env}
            rows.append(_stat_row(keys, stat, counts))
    return rows


def task_rows(res: Results) -> list[dict[str, Any]]:
    """One row per (method, env, task)."""
    rows = []
    for (m, env, tid), s in sorted(res.task.items(), key=lambda kv: (kv[0][0], res.envs.index(kv[0][1]), kv[0][2])):
        keys = {"method": m, "model": res.models.get(m, m), "data_key": res.data[(m, env, tid)], "env": env}
        rows.append(_stat_row({**keys, "task_id": tid}, s, ("n_seeds",)))
    return rows


def run_rows(runs: Iterable[Run]) -> list[dict[str, Any]]:
    """One row per run used."""
    return [
        {
            "method": r.method,
            "model": r.model,
            "data_source": r.data.source,
            "data_key": r.data.key,
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
    """Rows (dicts with the same keys, the header from the first) as CSV text."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(rows[0]) if rows else [], lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buf.getvalue()


def diagnostics_markdown(curves: dict[str, dict[tuple[str, str, int], Curve]]) -> str:
    """The last logged value of each premise diagnostic (rows) per method and task (columns), ± s.e. over seeds."""
    columns = sorted({key for by_key in curves.values() for key in by_key})
    if not columns:
        return ""

    def cell(curve: Curve | None) -> str:
        if curve is None:
            return ""
        _, mean, se = curve
        return f"{mean[-1]:.3g}" + ("" if math.isnan(se[-1]) else f" ± {se[-1]:.2g}")

    rows = [[f"`{tag}`", *(cell(by_key.get(key)) for key in columns)] for tag, by_key in curves.items()]
    table = markdown_table(["diagnostic", *(f"{m}, task {tid}" for (m, _, tid) in columns)], rows)
    envs = sorted({env for (_, env, _) in columns})
    steps = sorted({int(steps[-1]) for by_key in curves.values() for steps, _, _ in by_key.values()})
    return table + f"\n\nAt step {', '.join(map(str, steps))} on {', '.join(envs)}; ± one s.e. over seeds.\n"

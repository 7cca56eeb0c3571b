"""A reference beside one's results: a CSV (``environment, task, method, success[, stderr]`` in percent) compared
cell by cell with the aggregate. An empty ``task`` is an environment's number, else an environment's reference is
the mean of its task rows over the tasks our cell pooled (s.e. sqrt(sum s.e.^2) / k), none if one is missing. A
``method`` names a column (``rql (minari)``) or a model (``rql``: beside its every column). Within two standard
errors: |ours - reference| <= 2 * sqrt(se_ours^2 + se_ref^2), with the one that exists; undecided without any."""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass
from pathlib import Path

from rql_lightning.results.aggregate import Results, Stat, markdown_table
from rql_lightning.results.load import ResultsInputError

_FIX = "columns environment, task, method, success[, stderr], success in percent"


@dataclass(frozen=True)
class Reference:
    """A reference CSV's rows by (method, env, task) and (method, env): :class:`Stat` of fractions, ``n_seeds=0``."""

    path: str
    task: dict[tuple[str, str, int], Stat]
    env: dict[tuple[str, str], Stat]


@dataclass(frozen=True)
class Comparison:
    """One cell of ours (a task, or an environment with ``task_id`` None) beside the reference, if it has one."""

    method: str
    env: str
    task_id: int | None
    ours: Stat
    ref: Stat | None

    @property
    def difference(self) -> float:
        return math.nan if self.ref is None else self.ours.mean - self.ref.mean

    @property
    def within_2se(self) -> bool | None:
        """None without a reference or without any standard error."""
        if self.ref is None:
            return None
        variances = [se**2 for se in (self.ours.se, self.ref.se) if not math.isnan(se)]
        return None if not variances else abs(self.difference) <= 2 * math.sqrt(sum(variances))


def _number(text: str, what: str, where: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or not 0 <= value <= 100:
        raise ResultsInputError(f"reference={where}: {what}={text!r} is not a percentage in [0, 100]; write {_FIX}")
    return value / 100


def load_reference(path: str | Path) -> Reference:
    """Read and check a reference CSV; a problem is one :class:`ResultsInputError` naming the file and the fix."""
    try:
        with Path(path).expanduser().open(newline="", encoding="utf-8-sig") as f:  # -sig: a spreadsheet's BOM
            reader = csv.DictReader(f)
            header = [name.strip() for name in reader.fieldnames or []]
            rows = [(reader.line_num, row) for row in reader]
    except OSError as err:
        raise ResultsInputError(f"reference={path} cannot be read ({err.strerror}); pass a CSV with {_FIX}") from None
    except (UnicodeDecodeError, csv.Error) as err:
        raise ResultsInputError(f"reference={path} is not a text CSV ({err}); write {_FIX}") from None
    missing = [c for c in ("environment", "task", "method", "success") if c not in header]  # stderr is optional
    if missing:
        raise ResultsInputError(f"reference={path} lacks column(s) {', '.join(missing)}; write {_FIX}")
    if not rows:
        raise ResultsInputError(f"reference={path} has a header but no rows; add one row per number, {_FIX}")
    ref = Reference(str(path), {}, {})
    for line, raw in rows:
        row = {k.strip(): (v or "").strip() for k, v in raw.items() if k is not None}  # None: values past the header
        where = f"{path} line {line}"
        env, method, task = row["environment"], row["method"], row["task"]
        if not env or not method:
            raise ResultsInputError(f"reference={where}: environment and method must be set; write {_FIX}")
        se = _number(row["stderr"], "stderr", where) if row.get("stderr") else math.nan
        value = Stat(_number(row["success"], "success", where), se, n_seeds=0)
        if not task:
            cells, key = ref.env, (method, env)
        elif task.isdigit():
            cells, key = ref.task, (method, env, int(task))
        else:
            raise ResultsInputError(f"reference={where}: task={task!r} is not a task number (or empty for the env)")
        if key in cells:
            raise ResultsInputError(f"reference={where}: a second row for {'/'.join(map(str, key))}; keep one")
        cells[key] = value
    return ref


def _ref_method(ref: Reference, res: Results, column: str) -> str:
    """The reference's name for a column: the column itself if the reference has it, else its model."""
    return column if column in {key[0] for key in (*ref.task, *ref.env)} else res.models.get(column, column)


def compare(res: Results, ref: Reference) -> list[Comparison]:
    """Every environment and task cell of ours, in table order, beside its reference (None where it has none)."""
    out = []
    for m in res.methods:
        name = _ref_method(ref, res, m)
        for env in res.envs:
            if (m, env) not in res.env:
                continue
            tasks = sorted(tid for (mm, e, tid) in res.task if mm == m and e == env)
            refs = [ref.task.get((name, env, tid)) for tid in tasks]
            env_ref = ref.env.get((name, env))
            if env_ref is None and all(r is not None for r in refs):  # the mean of its task rows
                k, ses = len(refs), [r.se for r in refs]
                se = math.nan if any(math.isnan(s) for s in ses) else math.sqrt(sum(s**2 for s in ses)) / k
                env_ref = Stat(sum(r.mean for r in refs) / k, se, n_seeds=0, n_tasks=k)
            out.append(Comparison(m, env, None, res.env[(m, env)], env_ref))
            out += [Comparison(m, env, tid, res.task[(m, env, tid)], r) for tid, r in zip(tasks, refs, strict=True)]
    return out


def unmatched(res: Results, ref: Reference) -> list[str]:
    """The reference rows that stand beside no cell of ours (``method/env/task``): a misspelt name shows here."""
    used = {(_ref_method(ref, res, m), env, tid) for (m, env, tid) in res.task}
    used |= {(_ref_method(ref, res, m), env) for (m, env) in res.env}
    return ["/".join(map(str, key)) for key in (*ref.env, *ref.task) if key not in used]


def reference_markdown(comparisons: list[Comparison], source: str) -> str:
    """Rows: (method, environment, task or ``all``); ours, the reference, the difference and the 2-s.e. check."""
    verdict = {True: "yes", False: "no", None: "?"}
    rows = []
    for c in comparisons:
        ref = ["-", "-", "-"] if c.ref is None else [c.ref.fmt(), f"{100 * c.difference:+.1f}", verdict[c.within_2se]]
        rows.append([c.method, c.env, "all" if c.task_id is None else c.task_id, c.ours.fmt(), *ref])
    head = ["method", "environment", "task", "ours", "reference", "ours - reference", "within 2 s.e."]
    caption = (
        f"Final success rate (%) beside the reference `{source}`; task `all` is the environment. Within 2 s.e.: "
        "|ours - reference| <= 2·sqrt(s.e.ours² + s.e.ref²), with the one s.e. given when only one is; "
        "? when neither is; - where the reference has no number."
    )
    return caption + "\n\n" + markdown_table(head, rows)


def reference_rows(comparisons: list[Comparison]) -> list[dict]:
    """The comparison as CSV rows, fractions as in the other CSVs; empty cells where the reference has none."""

    def num(x: float) -> float | str:
        return "" if math.isnan(x) else round(x, 6)

    return [
        {
            "method": c.method,
            "env": c.env,
            "task_id": "all" if c.task_id is None else c.task_id,
            "ours_mean": num(c.ours.mean),
            "ours_se": num(c.ours.se),
            "reference_mean": "" if c.ref is None else num(c.ref.mean),
            "reference_se": "" if c.ref is None else num(c.ref.se),
            "difference": num(c.difference),
            "within_2se": {True: "yes", False: "no", None: ""}[c.within_2se],
        }
        for c in comparisons
    ]

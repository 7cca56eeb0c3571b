"""Finding the runs: every ``summary.json`` under a directory -> the :class:`Run` records that count.

A run's identity is (model, ``--by`` values, data key, evaluation semantics, environment, task, seed). Runs
that differ in any of these are never repeats of each other: the same task trained on Minari and on OGBench
data, on a 100k and a 1M generated file, or evaluated with OGBench 1.2's success timing and 1.1's, are two
results. When one identity appears more than once, the most
recently updated run is used and the others are listed as left out.
"""

from __future__ import annotations

import json
import re
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from rql_lightning.errors import UserError
from rql_lightning.results.identity import MISSING, DataId, data_identity, eval_semantics, lookup, model_name

__all__ = ["Run", "ResultsInputError", "check_by_keys", "load_summaries", "select_runs", "load_runs"]

SUMMARY_FILENAME = "summary.json"
_BY_KEY = re.compile(r"^[A-Za-z_][\w-]*(\.[\w-]+)+$")


class ResultsInputError(UserError):
    """A runs directory, a ``--by`` key or a reference CSV that cannot be read as asked."""


@dataclass(frozen=True)
class Run:
    """One run's final result, as read from its ``summary.json``."""

    model: str  # short name: rql, fql, bc, or the user's own
    env: str
    task_id: int
    seed: int
    data: DataId
    success_rate: float
    mean_return: float | None
    step: int
    eval_step: int | None
    status: str
    curve: tuple[tuple[int, float], ...]  # (training batch, success rate) of every evaluation
    path: Path  # the run directory
    updated_at: str = ""
    variant: str = ""  # the --by values, "alpha=3.0"
    method: str = ""  # the table column: model, variant, and the data where a table mixes several
    seed_batched: bool = False  # one seed of a ``seeds=[...]`` job: its logs are the job's, tagged ``seed<s>/``
    task_batched: bool = False  # one replica of a ``task.ids=[...]`` job: tagged ``task<t>/seed<s>/``
    semantics: str = ""  # how it was evaluated: "ogbench 1.2.2 pre" (identity.eval_semantics)

    @property
    def identity(self) -> tuple[str, str, str, str, str, int, int]:
        return (self.model, self.variant, self.data.key, self.semantics, self.env, self.task_id, self.seed)


def check_by_keys(by: Sequence[str]) -> None:
    """Every ``--by`` key is dotted: a config key (``model.alpha``) or a data field (``data.source``)."""
    for key in by:
        if not _BY_KEY.match(key):
            raise ResultsInputError(
                f"--by={key} is not a dotted key; use a config key such as model.alpha or a data field such "
                "as data.source, data.dataset, data.key"
            )


def load_summaries(runs_dir: str | Path) -> tuple[list[dict[str, Any]], list[str]]:
    """Every ``summary.json`` under ``runs_dir`` (recursively), each with ``_path`` = its run directory.

    A file that cannot be read or is not a JSON object is named in one note and skipped.
    """
    root = Path(runs_dir).expanduser()
    if not root.is_dir():
        raise ResultsInputError(
            f"runs_dir={runs_dir} is not a directory; pass the folder holding the runs (e.g. outputs/ or multirun/)"
        )
    summaries, notes = [], []
    for path in sorted(root.rglob(SUMMARY_FILENAME)):
        try:
            summary = json.loads(path.read_text())
        except (OSError, ValueError) as err:  # UnicodeDecodeError and JSONDecodeError are ValueErrors
            notes.append(f"{path}: unreadable ({' '.join(str(err).split())})")
            continue
        if not isinstance(summary, dict):
            notes.append(f"{path}: not a JSON object")
            continue
        summary["_path"] = str(path.parent)
        summaries.append(summary)
    return summaries, notes


def _by_value(summary: dict[str, Any], data: DataId, key: str) -> Any:
    if key.startswith("data."):
        value = data.field(key[len("data.") :])
        if value is not MISSING:
            return value
    return lookup(summary.get("config"), key)


def _run(summary: dict[str, Any], by: Sequence[str], status: str) -> Run:
    data = data_identity(summary)
    values = [_by_value(summary, data, key) for key in by]
    curve = tuple(
        (int(p["step"]), float(p["success_rate"]))
        for p in summary.get("curve") or []
        if p.get("success_rate") is not None
    )
    return Run(
        model=model_name(summary),
        env=str(summary["task"]),
        task_id=int(summary["task_id"]),
        seed=int(summary["seed"]),
        data=data,
        success_rate=float(summary["success_rate"]),
        mean_return=None if summary.get("return") is None else float(summary["return"]),
        step=int(summary.get("step") or 0),
        eval_step=None if summary.get("eval_step") is None else int(summary["eval_step"]),
        status=status,
        curve=curve,
        path=Path(summary.get("_path", "?")),
        updated_at=str(summary.get("updated_at") or ""),
        seed_batched=bool(summary.get("seeds")),
        task_batched=bool(summary.get("task_ids")),
        semantics=eval_semantics(summary),
        variant=" ".join(
            f"{k.rsplit('.', 1)[-1]}={'?' if v is MISSING else v}" for k, v in zip(by, values, strict=True)
        ),
    )


def _one_key_per_cell(runs: Sequence[Run], column) -> bool:
    cells: dict[tuple, set[str]] = defaultdict(set)
    for r in runs:
        cells[(column(r), r.env, r.task_id)].add(r.data.key)
    return all(len(keys) == 1 for keys in cells.values())


def label_runs(runs: Sequence[Run], by: Sequence[str] = ()) -> list[Run]:
    """Name each run's table column: ``rql``, ``rql (minari)`` where the runs mix data sources, or ``rql
    (<data key>)`` where one source holds several datasets for the same task, and ``[ogbench 1.2.2 pre]`` where
    the runs were evaluated under several semantics; seeds pool only within a column.
    """
    mixed = len({r.semantics for r in runs if not r.semantics.endswith(" -")}) > 1  # "-": an env without the switch

    def base(r: Run) -> str:
        return " ".join(filter(None, (r.model, r.variant, f"[{r.semantics}]" if mixed else "")))

    one_source = len({r.data.source for r in runs}) == 1 or "data.source" in by
    if one_source and _one_key_per_cell(runs, base):
        return [replace(r, method=base(r)) for r in runs]
    if _one_key_per_cell(runs, lambda r: (base(r), r.data.source)):
        return [replace(r, method=f"{base(r)} ({r.data.source})") for r in runs]
    keys = {r.data.key: r.data.short for r in runs}
    unique = len(set(keys.values())) == len(keys)
    return [replace(r, method=f"{base(r)} ({keys[r.data.key] if unique else r.data.key})") for r in runs]


def select_runs(
    summaries: Iterable[dict[str, Any]], by: Sequence[str] = (), include_unfinished: bool = False
) -> tuple[list[Run], list[str]]:
    """The runs that count, and one note per summary left out (unfinished, malformed, duplicate)."""
    check_by_keys(by)
    notes: list[str] = []
    chosen: dict[tuple, Run] = {}
    parsed: list[dict[str, Any]] = []
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
        try:
            run = _run(s, by, status)
        except (KeyError, TypeError, ValueError) as err:
            notes.append(f"{where}: malformed summary.json ({type(err).__name__}: {err})")
            continue
        parsed.append(s)
        old = chosen.get(run.identity)
        if old is not None:
            keep, drop = (run, old) if (run.updated_at, str(run.path)) > (old.updated_at, str(old.path)) else (old, run)
            what = "/".join(map(str, (keep.model, keep.data.key, keep.semantics, keep.env, keep.task_id, keep.seed)))
            notes.append(f"{drop.path}: duplicate of {keep.path} ({what}), older: ignored")
            run = keep
        chosen[run.identity] = run
    for key in by:
        if parsed and all(_by_value(s, data_identity(s), key) is MISSING for s in parsed):
            raise ResultsInputError(
                f"--by={key} is in no run's config or data record; check the spelling (keys look like model.alpha, "
                "task.name, data.source)"
            )
    runs = label_runs(list(chosen.values()), by)
    return sorted(runs, key=lambda r: (r.method, r.env, r.task_id, r.seed)), notes


def load_runs(
    runs_dir: str | Path, by: Sequence[str] = (), include_unfinished: bool = False
) -> tuple[list[Run], list[str]]:
    """:func:`load_summaries` then :func:`select_runs`; the notes of both."""
    summaries, notes = load_summaries(runs_dir)
    runs, more = select_runs(summaries, by=by, include_unfinished=include_unfinished)
    return runs, notes + more

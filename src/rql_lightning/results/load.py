"""Finding the runs: every ``summary.json`` under a directory -> the :class:`Run` records that count (of every
age of summary), and their premise diagnostics from TensorBoard. Runs differing in model, ``--by`` values, data,
evaluation semantics, env, task or seed are never repeats; of repeats the most recently updated counts."""

from __future__ import annotations

import json
import re
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from rql_lightning.errors import UserError
from rql_lightning.naming import METHOD_NAMES, data_key, replica_key

MISSING = object()  # a dotted key that is not in a config
_BY_KEY = re.compile(r"^[A-Za-z_][\w-]*(\.[\w-]+)+$")


class ResultsInputError(UserError):
    """A runs directory, a ``--by`` key or a reference CSV that cannot be read as asked."""


def lookup(node: Any, dotted: str) -> Any:
    """``node["a"]["b"]`` for ``"a.b"``; :data:`MISSING` when any level is absent."""
    for key in dotted.split("."):
        if not isinstance(node, dict) or key not in node:
            return MISSING
        node = node[key]
    return node


def model_name(summary: dict[str, Any]) -> str:
    """The method's short name: ``rql``, ``fql``, ``bc`` or the user's own (``model.name``)."""
    config = summary.get("config")
    for candidate in (
        summary.get("model"),
        lookup(config, "model.name"),
        summary.get("model_class"),
        lookup(config, "model._target_"),
    ):
        name = str(candidate).rsplit(".", 1)[-1] if candidate is not MISSING and candidate else ""
        if name:
            return METHOD_NAMES.get(name, name)  # older summaries name the module class
    return "?"


@dataclass(frozen=True)
class DataId:
    """What a run trained on; ``key`` is its identity (``<source>:<dataset>#<fingerprint>``)."""

    source: str  # ogbench | ogbench-shards | minari | arrays | ? (unknown)
    dataset: str
    key: str
    path: str | None = None
    size_bytes: int | None = None
    fingerprint: str | None = None

    @classmethod
    def from_summary(cls, summary: dict[str, Any]) -> DataId:
        """The summary's ``data`` record, else derived from its config (older summaries), else unknown (``?``)."""
        record = summary.get("data")
        if not (isinstance(record, dict) and record.get("source")):
            record = _record_from_config(summary.get("config"))
        source, dataset = str(record.get("source") or "?"), str(record.get("dataset") or "?")
        path, size, fingerprint = record.get("path"), record.get("size_bytes"), record.get("fingerprint") or None
        key = record.get("key") or data_key(source, dataset, fingerprint, path)
        return cls(source, dataset, str(key), path and str(path), size and int(size), fingerprint and str(fingerprint))

    @property
    def short(self) -> str:
        """The key with a shortened fingerprint, or the file name instead of the full path."""
        return data_key(
            self.source, self.dataset, self.fingerprint and self.fingerprint[:8], self.path and Path(self.path).name
        )

    def field(self, name: str) -> Any:
        """A field named in ``--by data.<name>``; :data:`MISSING` if there is no such field or it is unknown."""
        value = getattr(self, name) if name in self.__dataclass_fields__ else None
        return MISSING if value is None else value


def _record_from_config(config: Any) -> dict[str, Any]:
    """Older summaries: what the resolved config says (no size or fingerprint; the path when it was given)."""
    data = config.get("data") if isinstance(config, dict) else None
    if not isinstance(data, dict):
        return {"source": "?", "dataset": "?", "key": "?"}
    target = str(data.get("_target_") or "").rsplit(".", 1)[-1]
    path = data.get("dataset_path")
    if target == "MinariDataModule" or "dataset_id" in data:
        source, dataset = "minari", data.get("dataset_id")
        path = str(Path(data["data_dir"]) / str(dataset or "?")) if data.get("data_dir") else None
    elif target == "ArrayDataModule":
        source, dataset = "arrays", None
    elif target.endswith("OGBenchDataModule") or "dataset" in data or path:
        sharded = target.startswith("Sharded") or data.get("data_kind") == "100m_shards"
        sharded = sharded or (path is not None and not str(path).endswith(".npz"))
        named = data.get("dataset") or lookup(config, "task.dataset")
        dataset = named if named and named is not MISSING else (Path(path).stem if path else None)
        source = "ogbench-shards" if sharded else "ogbench"
    else:
        source, dataset = target, None
    return {"source": source, "dataset": dataset, "path": path}


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
    semantics: str = ""  # how it was evaluated: "ogbench 1.2.2 pre"

    @property
    def identity(self) -> tuple[str, str, str, str, str, int, int]:
        return (self.model, self.variant, self.data.key, self.semantics, self.env, self.task_id, self.seed)


def _run(summary: dict[str, Any], by: Sequence[str], status: str) -> tuple[Run, list[Any]]:
    """The run, and its ``--by`` values (:data:`MISSING` where it has none)."""
    data = DataId.from_summary(summary)
    values = [data.field(key[len("data.") :]) if key.startswith("data.") else MISSING for key in by]
    values = [lookup(summary.get("config"), key) if v is MISSING else v for key, v in zip(by, values, strict=True)]
    # OGBench 1.2 moved single-task success to the state before the step: runs that differ here measure
    # different things ("?" where the summary predates the record, "-" for an env without the switch).
    timing = summary.get("success_timing") or ("-" if "success_timing" in summary else "?")
    run = Run(
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
        curve=tuple(
            (int(p["step"]), float(p["success_rate"]))
            for p in summary.get("curve") or []
            if p.get("success_rate") is not None
        ),
        path=Path(summary.get("_path", "?")),
        updated_at=str(summary.get("updated_at") or ""),
        seed_batched=bool(summary.get("seeds")),
        task_batched=bool(summary.get("task_ids")),
        semantics=f"ogbench {summary.get('ogbench_version') or '?'} {timing}",
        variant=" ".join(
            f"{k.rsplit('.', 1)[-1]}={'?' if v is MISSING else v}" for k, v in zip(by, values, strict=True)
        ),
    )
    return run, values


def _one_key_per_cell(runs: Sequence[Run], column) -> bool:
    cells: dict[tuple, set[str]] = defaultdict(set)
    for r in runs:
        cells[(column(r), r.env, r.task_id)].add(r.data.key)
    return all(len(keys) == 1 for keys in cells.values())


def label_runs(runs: Sequence[Run], by: Sequence[str] = ()) -> list[Run]:
    """Each run's table column (seeds pool only within one): ``rql``, ``rql (minari)`` where sources mix, ``rql (<data
    key>)`` where one source has several datasets for a task, ``[ogbench 1.2.2 pre]`` where semantics mix."""
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


def load_runs(
    runs_dir: str | Path, by: Sequence[str] = (), include_unfinished: bool = False
) -> tuple[list[Run], list[str]]:
    """The runs under ``runs_dir`` that count, and one note per summary left out (unreadable, unfinished, ...)."""
    for key in by:
        if not _BY_KEY.match(key):
            raise ResultsInputError(
                f"--by={key} is not a dotted key; use a config key such as model.alpha or a data field such "
                "as data.source, data.dataset, data.key"
            )
    root = Path(runs_dir).expanduser()
    if not root.is_dir():
        raise ResultsInputError(
            f"runs_dir={runs_dir} is not a directory; pass the folder holding the runs (e.g. outputs/ or multirun/)"
        )
    notes: list[str] = []
    chosen: dict[tuple, Run] = {}
    found: set[str] = set()  # the --by keys some run has
    for path in sorted(root.rglob("summary.json")):
        try:
            s = json.loads(path.read_text())
        except (OSError, ValueError) as err:  # UnicodeDecodeError and JSONDecodeError are ValueErrors
            notes.append(f"{path}: unreadable ({' '.join(str(err).split())})")
            continue
        if not isinstance(s, dict):
            notes.append(f"{path}: not a JSON object")
            continue
        where = s["_path"] = str(path.parent)
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
            run, values = _run(s, by, status)
        except (KeyError, TypeError, ValueError) as err:
            notes.append(f"{where}: malformed summary.json ({type(err).__name__}: {err})")
            continue
        found.update(key for key, v in zip(by, values, strict=True) if v is not MISSING)
        old = chosen.get(run.identity)
        if old is not None:
            keep, drop = (run, old) if (run.updated_at, str(run.path)) > (old.updated_at, str(old.path)) else (old, run)
            what = "/".join(str(part) for part in keep.identity if part != "")
            notes.append(f"{drop.path}: duplicate of {keep.path} ({what}), older: ignored")
            run = keep
        chosen[run.identity] = run
    for key in by:
        if chosen and key not in found:
            raise ResultsInputError(
                f"--by={key} is in no run's config or data record; check the spelling (keys look like model.alpha, "
                "task.name, data.source)"
            )
    runs = label_runs(list(chosen.values()), by)
    return sorted(runs, key=lambda r: (r.method, r.env, r.task_id, r.seed)), notes


def run_diagnostics(run: Run, _cache: dict | None = None) -> dict[str, list[tuple[int, float]]]:
    """``diag/<name> -> [(step, value)]`` of one run's premise diagnostics, found from its directory alone: a batched
    job's replica ``<job>/[task<t>/]seed<s>`` logs ``[task<t>/]seed<s>/diag/<name>`` to ``<job>/tensorboard``."""
    batched = run.task_batched or run.seed_batched
    prefix = f"{replica_key(run.task_id if run.task_batched else None, run.seed)}/" if batched else ""
    log_dir = (run.path.parents[prefix.count("/") - 1] if prefix else run.path) / "tensorboard"
    if not log_dir.is_dir():
        return {}
    cache = {} if _cache is None else _cache
    if log_dir not in cache:
        acc = EventAccumulator(str(log_dir), size_guidance={"scalars": 0}).Reload()  # Reload returns the accumulator
        cache[log_dir] = {tag: [(e.step, e.value) for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}
    wanted = prefix + "diag/"
    return {tag.removeprefix(prefix): series for tag, series in cache[log_dir].items() if tag.startswith(wanted)}

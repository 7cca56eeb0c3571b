"""What a run is, read from its ``summary.json``: the method's short name, the data it trained on and the
evaluation's semantics (OGBench's version and success timing).

Two runs are repeats of each other only when both match; this module is the one place that decides
the names, for summaries of every age (class names and no ``data`` record in older files).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["DataId", "data_identity", "eval_semantics", "model_name", "lookup", "MISSING"]

# Older summaries name the LightningModule class; tables use the names a paper does.
CLASS_NAMES = {"RQLModule": "rql", "FQLModule": "fql", "FlowBCModule": "bc"}
MISSING = object()  # a dotted key that is not in a config


def lookup(node: Any, dotted: str) -> Any:
    """``node["a"]["b"]`` for ``"a.b"``; :data:`MISSING` when any level is absent."""
    for key in dotted.split("."):
        if not isinstance(node, dict) or key not in node:
            return MISSING
        node = node[key]
    return node


def _short(name: Any) -> str | None:
    if not name:
        return None
    name = str(name).rsplit(".", 1)[-1]
    return CLASS_NAMES.get(name, name)


def model_name(summary: dict[str, Any]) -> str:
    """The method's short name: ``rql``, ``fql``, ``bc`` or the user's own (``model.name``)."""
    config = summary.get("config")
    for candidate in (
        summary.get("model"),
        lookup(config, "model.name"),
        summary.get("model_class"),
        lookup(config, "model._target_"),
    ):
        if candidate is not MISSING and _short(candidate):
            return _short(candidate)  # type: ignore[return-value]
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

    @property
    def short(self) -> str:
        """The key with a shortened fingerprint, or the file name instead of the full path."""
        head = f"{self.source}:{self.dataset}"
        if self.fingerprint:
            return f"{head}#{self.fingerprint[:8]}"
        return f"{head}@{Path(self.path).name}" if self.path else head

    def field(self, name: str) -> Any:
        """A field named in ``--by data.<name>``; :data:`MISSING` if there is no such field or it is unknown."""
        value = getattr(self, name, MISSING) if name in FIELDS else MISSING
        return MISSING if value is None else value


FIELDS = ("source", "dataset", "key", "path", "size_bytes", "fingerprint")
UNKNOWN = DataId(source="?", dataset="?", key="?")


def _from_record(record: dict[str, Any]) -> DataId:
    source, dataset = str(record.get("source") or "?"), str(record.get("dataset") or "?")
    fingerprint = record.get("fingerprint") or None
    key = record.get("key") or f"{source}:{dataset}" + (f"#{fingerprint}" if fingerprint else "")
    size = record.get("size_bytes")
    return DataId(
        source=source,
        dataset=dataset,
        key=str(key),
        path=None if record.get("path") is None else str(record["path"]),
        size_bytes=None if size is None else int(size),
        fingerprint=None if fingerprint is None else str(fingerprint),
    )


def _from_config(config: dict[str, Any]) -> DataId:
    """Older summaries: what the resolved config says (no size or fingerprint; the path when it was given)."""
    data = config.get("data")
    if not isinstance(data, dict):
        return UNKNOWN
    target = str(data.get("_target_") or "").rsplit(".", 1)[-1]
    path = data.get("dataset_path")
    if target == "MinariDataModule" or "dataset_id" in data:
        source, dataset = "minari", str(data.get("dataset_id") or "?")
        path = str(Path(data["data_dir"]) / dataset) if data.get("data_dir") else None
    elif target == "ArrayDataModule":
        source, dataset = "arrays", "?"
    elif target.endswith("OGBenchDataModule") or "dataset" in data or path:
        sharded = target.startswith("Sharded") or data.get("data_kind") == "100m_shards"
        sharded = sharded or (path is not None and not str(path).endswith(".npz"))
        source = "ogbench-shards" if sharded else "ogbench"
        named = data.get("dataset") or lookup(config, "task.dataset")
        dataset = str(named) if named and named is not MISSING else (Path(path).stem if path else "?")
    else:
        source, dataset = target or "?", "?"
    key = f"{source}:{dataset}" + (f"@{path}" if path else "")
    return DataId(source=source, dataset=dataset, key=key, path=None if path is None else str(path))


def data_identity(summary: dict[str, Any]) -> DataId:
    """The run's data: the summary's ``data`` record, else derived from its config, else unknown (``?``)."""
    record = summary.get("data")
    if isinstance(record, dict) and record.get("source"):
        return _from_record(record)
    config = summary.get("config")
    return _from_config(config) if isinstance(config, dict) else UNKNOWN


def eval_semantics(summary: dict[str, Any]) -> str:
    """How the run was evaluated: ``ogbench <version> <success timing>`` (``?`` where the summary predates the
    record, ``-`` for an env without the switch). OGBench 1.2 moved single-task success to the state before the
    step, so runs that differ here measure different things."""
    version = summary.get("ogbench_version") or "?"
    timing = summary.get("success_timing") or ("-" if "success_timing" in summary else "?")
    return f"ogbench {version} {timing}"

"""``data=ogbench``: the single-file or the sharded OGBench module, chosen once from ``task.data_kind``.

The choice is made when the config is instantiated (on every rank alike), never in ``prepare_data``:

* an explicit ``dataset_path`` decides: a directory is shards, a ``.npz`` is one file;
* else ``data_kind``: ``standard`` -> :class:`OGBenchDataModule`, ``100m_shards`` ->
  :class:`ShardedOGBenchDataModule`;
* a sharded task whose shard directory is empty or absent, with ``generate_if_missing``, trains on a
  generated file of its 1M-style dataset instead (100M transitions are not generated implicitly).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from rql_lightning.data.errors import DataConfigError
from rql_lightning.data.ogbench_datamodule import OGBenchDataModule, OGBenchSource
from rql_lightning.data.sharded import ShardedOGBenchDataModule
from rql_lightning.naming import NPZ_SUFFIX, dataset_name_of, default_data_dir, list_shards

log = logging.getLogger("rql_lightning")

STANDARD = "standard"
SHARDED = "100m_shards"
DATA_KINDS = (STANDARD, SHARDED)


def is_sharded(data_kind: str, dataset_path: str | None) -> bool:
    """Whether this configuration trains on a shard directory."""
    if data_kind not in DATA_KINDS:
        raise DataConfigError(f"data.data_kind={data_kind!r} is unknown; use one of {', '.join(DATA_KINDS)}")
    if dataset_path:
        path = Path(dataset_path).expanduser()
        return path.is_dir() or (data_kind == SHARDED and path.suffix != NPZ_SUFFIX)
    return data_kind == SHARDED


# Settings only one of the two layouts has; everything else is OGBenchSource's and goes to either.
SHARD_ONLY = ("shard_swap_interval", "shards_in_memory", "shard_stall")
FILE_ONLY = ("download", "generate_if_missing", "generated_dir", "generate_transitions", "generate_workers", "load_val")


def ogbench_datamodule(
    singletask_name: str, chunk_size: int, batch_size: int = 256, *, data_kind: str = STANDARD, **settings: Any
) -> OGBenchSource:
    """The OGBench datamodule for these settings (see the module docstring for the rule); ``settings`` are the
    keyword arguments of :class:`OGBenchDataModule` and :class:`ShardedOGBenchDataModule`, each given those
    its layout takes."""
    dataset_path, data_dir = settings.get("dataset_path"), settings.get("data_dir")
    sharded = is_sharded(data_kind, dataset_path)
    if sharded and settings.get("generate_if_missing") and not dataset_path:
        directory = (Path(data_dir).expanduser() if data_dir else default_data_dir()) / (
            settings.get("dataset") or dataset_name_of(singletask_name)
        )
        if not list_shards(directory):
            base = dataset_name_of(singletask_name)
            log.warning(
                "%s has no shards; data.generate_if_missing=true: training on a generated %s file instead",
                directory,
                base,
            )
            sharded, settings = False, {**settings, "dataset": base}
    cls, other = (ShardedOGBenchDataModule, FILE_ONLY) if sharded else (OGBenchDataModule, SHARD_ONLY)
    return cls(singletask_name, chunk_size, batch_size, **{k: v for k, v in settings.items() if k not in other})

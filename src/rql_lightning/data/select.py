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

from rql_lightning.data.errors import DataConfigError
from rql_lightning.data.ogbench import ACTION_CLIP_EPS
from rql_lightning.data.ogbench_datamodule import OGBenchDataModule, OGBenchSource
from rql_lightning.data.sharded import ShardedOGBenchDataModule
from rql_lightning.data.validate import ACTION_TOLERANCE
from rql_lightning.naming import DEFAULT_GENERATED_DIR, NPZ_SUFFIX, dataset_name_of, default_data_dir, list_shards

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


def ogbench_datamodule(
    singletask_name: str,
    chunk_size: int,
    batch_size: int = 256,
    *,
    data_kind: str = STANDARD,
    dataset: str | None = None,
    data_dir: str | None = None,
    dataset_path: str | None = None,
    sparse: bool = False,
    download: bool = True,
    generate_if_missing: bool = False,
    generated_dir: str = DEFAULT_GENERATED_DIR,
    generate_transitions: int = 200_000,
    generate_workers: int = 2,
    load_val: bool = True,
    shard_swap_interval: int = 1000,
    shards_in_memory: int = 1,
    shard_stall: str = "wait",
    action_clip_eps: float = ACTION_CLIP_EPS,
    action_tolerance: float = ACTION_TOLERANCE,
    device: str = "cpu",
    seed: int = 0,
    global_batch_size: int | None = None,
) -> OGBenchSource:
    """The OGBench datamodule for these settings (see the module docstring for the rule)."""
    source = dict(
        dataset=dataset,
        data_dir=data_dir,
        dataset_path=dataset_path,
        sparse=sparse,
        action_clip_eps=action_clip_eps,
        action_tolerance=action_tolerance,
        device=device,
        seed=seed,
        global_batch_size=global_batch_size,
    )
    sharded = is_sharded(data_kind, dataset_path)
    if sharded and generate_if_missing and not dataset_path:
        directory = (Path(data_dir).expanduser() if data_dir else default_data_dir()) / (
            dataset or dataset_name_of(singletask_name)
        )
        if not list_shards(directory):
            base = dataset_name_of(singletask_name)
            log.warning(
                "%s has no shards; data.generate_if_missing=true: training on a generated %s file instead",
                directory,
                base,
            )
            sharded, source["dataset"] = False, base
    if sharded:
        return ShardedOGBenchDataModule(
            singletask_name,
            chunk_size,
            batch_size,
            shard_swap_interval=shard_swap_interval,
            shards_in_memory=shards_in_memory,
            shard_stall=shard_stall,
            **source,
        )
    return OGBenchDataModule(
        singletask_name,
        chunk_size,
        batch_size,
        download=download,
        generate_if_missing=generate_if_missing,
        generated_dir=generated_dir,
        generate_transitions=generate_transitions,
        generate_workers=generate_workers,
        load_val=load_val,
        **source,
    )

"""Offline data -> window batches. Imports one way (each module only those above it), never an algorithm:

``naming`` (top level: OGBench/Minari names and paths) -> ``errors``, ``arrays``, ``npz`` -> ``validate``
-> ``windows`` (window semantics, sampler, streams) -> ``datamodule`` (the contract: dims, identity,
batch sizes) -> sources: ``ogbench`` (loading) + ``ogbench_datamodule`` (one file), ``shards`` (the
schedule) + ``sharded`` (a shard directory), ``minari_read``/``minari_write`` + ``minari``; ``select``
picks the OGBench module from ``task.data_kind``. ``generate/`` makes OGBench play data offline,
``obtain`` says how to get missing data, ``identity`` fingerprints what a run trained on, ``info`` is
what ``rql-data info`` reports. A new source is a :class:`~rql_lightning.data.datamodule.WindowDataModule`
subclass with ``load_arrays``, ``dims`` and ``identity``, plus a ``conf/data/<name>.yaml``.
"""

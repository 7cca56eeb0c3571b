"""Offline data -> window batches. Imports one way (each module only those above it), never an algorithm:

``naming`` (top level: OGBench/Minari names and paths) -> ``dataset_checks`` (what makes a dataset
unusable: the errors, ``.npz`` headers, the checks) -> ``windows`` (the transition arrays, the window
semantics, the sampler and batch streams) -> ``datamodule`` (the contract: dims, identity, batch sizes;
``ArrayDataModule``) -> sources: ``ogbench_datamodule`` (reading an OGBench file, one file or a shard
directory, and the choice between them; a shard directory's schedule is ``shard_schedule``) and
``minari_datamodule`` (``minari_export`` writes OGBench play data as Minari). ``generate/`` makes OGBench
play data offline, ``download`` fetches OGBench's files (the 100M shards resumably) and says how to get
missing data, ``dataset_summary`` is what ``rql-data info`` reports. A new source is a
:class:`~rql_lightning.data.datamodule.WindowDataModule` subclass with ``load_arrays``, ``dims`` and
``identity``, plus a ``conf/data/<name>.yaml``.
"""

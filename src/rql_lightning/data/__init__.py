"""Offline data -> window batches. Imports go one way, never to an algorithm: ``naming`` -> ``dataset_checks`` ->
``windows`` -> ``datamodule`` (the contract; ``ArrayDataModule``) -> sources (``ogbench_datamodule`` with
``shard_schedule``, ``minari_datamodule`` with its exporter). ``generate`` makes play data offline, ``download``
fetches OGBench's files. A new source is a :class:`~rql_lightning.data.datamodule.WindowDataModule` subclass
(``load_arrays``, ``dims``, ``identity``) plus a ``conf/data/<name>.yaml``.
"""

"""Offline-to-online fine-tuning: after the offline updates, act in the environment and keep training.

* :mod:`~rql_lightning.online.buffer`: the replay buffer, the offline rows plus every online
  transition, growing by what is added, serving windows with the offline semantics;
* :mod:`~rql_lightning.online.actor`: the one environment process that steps beside training;
* :mod:`~rql_lightning.online.explore`: the exploration policy and its seeds (the release's
  ``sample_actions(temperature=1)``);
* :mod:`~rql_lightning.online.segments`: online transitions saved beside the checkpoints, atomically;
* :mod:`~rql_lightning.online.phase`: the callback that runs the online phase, built from the ``online`` config
  node. docs/online.md says what a run does and what a resume keeps.
"""

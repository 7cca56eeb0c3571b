"""The ``online`` config node -> the online phase's callback and the Trainer's step budget.

``online.steps=0`` (the default) builds nothing: the run is the offline run, unchanged. The node's values
are checked with every other setting (:func:`rql_lightning.checks.check_config`), before this runs.
"""

from __future__ import annotations

from typing import Any


def online_phase(cfg: Any):
    """The :class:`~rql_lightning.online.phase.OnlinePhase` of ``cfg``, or None when ``online.steps=0``."""
    node = cfg.get("online") or {}
    if not node.get("steps", 0):
        return None
    from rql_lightning.online.phase import OnlinePhase

    return OnlinePhase(
        steps=int(node.steps),
        offline_steps=int(cfg.trainer.max_steps),
        utd=int(node.get("utd", 1)),
        seed=int(cfg.seed),
        env_name=node.get("env_name"),
        env_kwargs={"success_timing": (cfg.get("eval") or {}).get("success_timing"), **(node.get("env_kwargs") or {})},
    )

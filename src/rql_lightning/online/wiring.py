"""The ``online`` config node -> the online phase's callback and the Trainer's step budget.

``online.steps=0`` (the default) builds nothing: the run is the offline run, unchanged.
"""

from __future__ import annotations

from typing import Any

from rql_lightning.errors import UserError


def check_online(cfg: Any) -> int:
    """Refuse a bad ``online`` node before anything heavy starts; returns ``online.steps``."""
    node = cfg.get("online") or {}
    steps, utd = node.get("steps", 0), node.get("utd", 1)
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 0:
        raise UserError(f"online.steps={steps} must be a whole number >= 0; 0 trains offline only")
    if isinstance(utd, bool) or not isinstance(utd, int) or utd < 1:
        raise UserError(f"online.utd={utd} must be a whole number >= 1; it is updates per environment step")
    offline = cfg.trainer.get("max_steps", -1)
    if steps and (offline is None or offline < 0):
        raise UserError(
            f"trainer.max_steps={offline} must be >= 0 with online.steps={steps}; it counts the offline updates"
        )
    return steps


def online_phase(cfg: Any):
    """The :class:`~rql_lightning.online.phase.OnlinePhase` of ``cfg``, or None when ``online.steps=0``."""
    if not check_online(cfg):
        return None
    from rql_lightning.online.phase import OnlinePhase

    node = cfg.online
    return OnlinePhase(
        steps=int(node.steps),
        offline_steps=int(cfg.trainer.max_steps),
        utd=int(node.get("utd", 1)),
        seed=int(cfg.seed),
        env_name=node.get("env_name"),
        env_kwargs=dict(node.get("env_kwargs") or {}),
    )

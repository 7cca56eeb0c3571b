"""Evaluation envs from a name: what needs gymnasium's registry (the string rules are :mod:`rql_lightning.naming`)."""

from __future__ import annotations

import os
from typing import Any

import gymnasium

from rql_lightning.envs.wrappers import EvalEnvWrapper
from rql_lightning.errors import UserError
from rql_lightning.naming import MINARI_PREFIX, is_minari_env_name, parse_singletask

__all__ = [
    "UnknownEnvError",
    "make_eval_env",
    "max_episode_steps",
    "ogbench_version",
    "resolve_env_id",
    "success_timing_of",
]

_EXAMPLES = "cube-single-singletask-task1-v0, cube-single-play-singletask-task1-v0, scene-singletask-task2-v0"


class UnknownEnvError(UserError, ValueError):
    """An evaluation env name that is neither an OGBench single-task env nor ``minari:<dataset>``."""


def _ogbench_registry() -> dict[str, Any]:
    import ogbench  # noqa: F401  (importing registers the OGBench environments with gymnasium)

    return gymnasium.registry


def resolve_env_id(env_name: str) -> tuple[str, bool]:
    """``(gymnasium id, is_dataset_name)`` of an OGBench single-task env id or dataset name, or ``minari:<dataset>``
    as is; :class:`UnknownEnvError` (a ``ValueError``) for anything else."""
    if is_minari_env_name(env_name):
        return env_name, False
    registry = _ogbench_registry()
    try:
        task = parse_singletask(env_name)
    except ValueError:
        raise UnknownEnvError(
            f"env_name={env_name!r} is not an OGBench single-task env id or dataset name; use one like {_EXAMPLES}"
        ) from None
    if env_name in registry:
        return env_name, False
    if task.env in registry:
        return task.env, True
    raise UnknownEnvError(
        f"env_name={env_name!r} is not a registered OGBench single-task env or dataset name; use one like {_EXAMPLES}"
    )


def max_episode_steps(env_name: str) -> int | None:
    """Time limit of an evaluation env (from its gymnasium spec; an OGBench env is not built)."""
    env_id, _ = resolve_env_id(env_name)
    if is_minari_env_name(env_id):
        env = make_eval_env(env_id)
        try:
            return env.spec.max_episode_steps if env.spec is not None else None
        finally:
            env.close()
    return gymnasium.spec(env_id).max_episode_steps


def ogbench_version() -> str | None:
    """The installed OGBench's version (recorded with every run: its semantics changed between releases)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("ogbench")
    except PackageNotFoundError:
        return None


def success_timing_of(env_name: str, requested: str | None = None) -> str | None:
    """When ``env_name`` computes success, reward and termination: on the state before the step (``pre``, OGBench
    1.2's single-task envs) or after it (``post``, OGBench 1.1's). ``requested`` (``eval.success_timing``) if set,
    else the installed OGBench's default for this env; None for a Minari env, which has no such switch."""
    env_id, _ = resolve_env_id(env_name)
    if is_minari_env_name(env_id):
        return None
    return requested or gymnasium.spec(env_id).kwargs.get("success_timing", "post")


def make_eval_env(env_name: str, **kwargs: Any) -> gymnasium.Env:
    """One evaluation env (no dataset download) in :class:`EvalEnvWrapper`, of an env id, a dataset name or
    ``minari:<dataset id or folder>`` (Minari's ``eval_env=True``); ``kwargs`` go to the env's constructor
    (``success_timing=None``: the installed OGBench's default; the passive env checker is off by default)."""
    env_id, is_dataset_name = resolve_env_id(env_name)
    if kwargs.get("success_timing", "") is None:
        del kwargs["success_timing"]
    if is_minari_env_name(env_id):
        import minari

        where = env_id[len(MINARI_PREFIX) :]  # a dataset id, or the absolute path of a dataset's folder
        if os.path.isabs(where):
            dataset = minari.MinariDataset(os.path.join(where, "data"))
        else:
            dataset = minari.load_dataset(where)
        return EvalEnvWrapper(dataset.recover_environment(eval_env=True, **kwargs))
    kwargs.setdefault("disable_env_checker", True)
    if is_dataset_name:
        import ogbench

        env = ogbench.make_env_and_datasets(env_name, env_only=True, **kwargs)
    else:
        env = gymnasium.make(env_id, **kwargs)
    return EvalEnvWrapper(env)

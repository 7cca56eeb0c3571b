"""Evaluation environments and vectorised, chunked policy rollouts.

* :mod:`~rql_lightning.envs.make`: which gym env a name means (OGBench single-task env id or dataset
  name, ``minari:<dataset>``) and :func:`make_eval_env`;
* :mod:`~rql_lightning.envs.wrappers`: deterministic resets, frame recording, chunk execution;
* :mod:`~rql_lightning.envs.vector`: the vector env, kept alive across evaluations (:class:`EvalEnvs`);
* :mod:`~rql_lightning.envs.rollout`: :func:`evaluate_policy`, the episode scheduler (seeds, sharding,
  accounting);
* :mod:`~rql_lightning.envs.result`: :class:`EvalResult`.

Nothing here knows a LightningModule: a policy is any callable from observations to action chunks.
"""

from rql_lightning.envs.make import UnknownEnvError, make_eval_env, max_episode_steps, resolve_env_id
from rql_lightning.envs.result import EvalResult
from rql_lightning.envs.rollout import Policy, evaluate_policy
from rql_lightning.envs.vector import EnvFactory, EvalEnvs
from rql_lightning.envs.wrappers import ChunkStepWrapper, EvalEnvWrapper

__all__ = [
    "ChunkStepWrapper",
    "EnvFactory",
    "EvalEnvWrapper",
    "EvalEnvs",
    "EvalResult",
    "Policy",
    "UnknownEnvError",
    "evaluate_policy",
    "make_eval_env",
    "max_episode_steps",
    "resolve_env_id",
]

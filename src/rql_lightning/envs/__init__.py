"""Evaluation envs (:mod:`.make`, :mod:`.wrappers`) and vectorised, chunked rollouts (:mod:`.rollout`).

Nothing here knows a LightningModule: a policy is any callable from observations to action chunks.
"""

from rql_lightning.envs.make import make_eval_env, max_episode_steps, resolve_env_id
from rql_lightning.envs.rollout import EvalEnvs, EvalResult, evaluate_policy

__all__ = ["EvalEnvs", "EvalResult", "evaluate_policy", "make_eval_env", "max_episode_steps", "resolve_env_id"]

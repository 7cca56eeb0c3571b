"""The vector env evaluations run on, kept alive from one evaluation to the next.

One vector env holds every replica's envs (each env built for its replica's env name, e.g. its task's), so all
of them step in lock-step.  Building it costs ~1 s per env (a worker process and its MuJoCo model), paid once per
:class:`EvalEnvs` instead of once per evaluation.  Reuse changes no result: every episode is reset
with its own seed (and :class:`~rql_lightning.envs.wrappers.EvalEnvWrapper` zeroes the solver warm
start), so what an env ran before does not matter.  The env is rebuilt when what it was built for
changes (names, count, chunk size, env kwargs, frame skip), dropped after a failed rollout (an async
worker may be left mid-step), and closed by :meth:`EvalEnvs.close`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from typing import Any

import gymnasium

from rql_lightning.envs.make import make_eval_env
from rql_lightning.envs.wrappers import ChunkStepWrapper

__all__ = ["EnvFactory", "EvalEnvs"]


class EnvFactory:
    """Picklable env constructor for vector-env workers: an eval env stepping whole chunks."""

    def __init__(self, env_name: str, kwargs: dict[str, Any], chunk_size: int, frame_skip: int = 1):
        self.env_name = env_name
        self.kwargs = kwargs
        self.chunk_size = chunk_size
        self.frame_skip = frame_skip

    def __call__(self) -> gymnasium.Env:
        env = make_eval_env(self.env_name, **self.kwargs)
        env.info_keys = ("success",)
        env.frame_skip = max(1, int(self.frame_skip))
        return ChunkStepWrapper(env, self.chunk_size)


class EvalEnvs:
    """Holder of one vector env of evaluation envs, reused while it fits the request.

    One env builds a ``SyncVectorEnv`` (in-process); more an ``AsyncVectorEnv`` with one
    subprocess per env (``context``: multiprocessing start method, platform default if None).
    ``builds`` counts the vector envs built so far; ``recording`` says whether some env may still have
    frame recording switched on from the last rollout.
    """

    def __init__(self, context: str | None = None):
        self.context = context
        self.builds = 0
        self.recording = False
        self._envs: gymnasium.vector.VectorEnv | None = None
        self._spec: tuple | None = None

    @property
    def alive(self) -> bool:
        return self._envs is not None

    def get(
        self, env_names: Sequence[str], chunk_size: int, env_kwargs: dict[str, Any], frame_skip: int
    ) -> gymnasium.vector.VectorEnv:
        """The vector env of one env per name in ``env_names``: the current one if built for the same, else a new
        one (the envs must share observation and action spaces)."""
        spec = (tuple(env_names), int(chunk_size), dict(env_kwargs), int(frame_skip))
        if self._envs is not None and spec == self._spec:
            return self._envs
        self.close()
        factories = [EnvFactory(name, dict(env_kwargs), chunk_size, frame_skip) for name in env_names]
        mode = gymnasium.vector.AutoresetMode.DISABLED
        if len(factories) == 1:
            envs = gymnasium.vector.SyncVectorEnv(factories, autoreset_mode=mode)
        else:
            envs = gymnasium.vector.AsyncVectorEnv(factories, autoreset_mode=mode, context=self.context)
        self._envs, self._spec, self.recording = envs, spec, False
        self.builds += 1
        return envs

    def close(self) -> None:
        """Close the vector env (its worker processes exit); the next :meth:`get` builds a new one."""
        envs, self._envs, self._spec = self._envs, None, None
        if envs is not None:
            envs.close()

    def discard(self) -> None:
        """Forget the vector env after a failed rollout, closing it as far as it still closes."""
        with contextlib.suppress(Exception):
            self.close()
        self._envs, self._spec = None, None

    def __enter__(self) -> EvalEnvs:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

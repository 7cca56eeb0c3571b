"""The one environment process of the online phase: it executes a chunk while training goes on, one step at a time
(as the release's ``ActionChunkingWrapper``), dropping the rest at an episode's end and resetting with the given seed.
"""

from __future__ import annotations

import multiprocessing as mp
from dataclasses import dataclass
from typing import Any

import numpy as np

from rql_lightning.envs.make import make_eval_env


@dataclass
class ChunkSteps:
    """What executing one chunk recorded, one row per step taken (``n <= h``): the state each action was taken in,
    the action, the env's outcome; ``next_observation``: the state to act in next (the reset's after an episode)."""

    observations: np.ndarray
    actions: np.ndarray
    rewards: np.ndarray
    terminated: np.ndarray
    truncated: np.ndarray
    success: np.ndarray
    next_observation: np.ndarray

    @property
    def episode_ended(self) -> bool:
        return bool(self.terminated[-1] or self.truncated[-1])


def _serve(conn, env_name: str, env_kwargs: dict[str, Any]) -> None:
    """The worker's loop: ``("reset", seed)`` -> observation; ``("chunk", actions, reset seed)`` -> ChunkSteps (the
    actions one step at a time, the rest dropped at the episode's end, then a reset with the seed)."""
    env = make_eval_env(env_name, **env_kwargs)
    env.info_keys = ("success",)
    observation = None
    try:
        while True:
            message = conn.recv()
            if message is None:
                break
            if message[0] == "reset":
                observation, _ = env.reset(seed=int(message[1]))
                conn.send(np.asarray(observation))
                continue
            steps = []  # (observation, action, reward, terminated, truncated, success) per step taken
            for action in message[1]:
                next_observation, reward, terminated, truncated, info = env.step(action)
                success = float(info.get("success", 0.0))
                steps.append((observation, action, float(reward), bool(terminated), bool(truncated), success))
                observation = next_observation
                if terminated or truncated:
                    observation, _ = env.reset(seed=int(message[2]))
                    break
            conn.send(ChunkSteps(*(np.asarray(column) for column in zip(*steps, strict=True)), np.asarray(observation)))
    finally:
        env.close()
        conn.close()


class EnvActor:
    """One env in a worker process; ``context``: the start method (None: the platform's, as the evaluation
    envs use; the worker only simulates, so forking beside CUDA is safe)."""

    def __init__(self, env_name: str, env_kwargs: dict[str, Any] | None = None, context: str | None = None) -> None:
        ctx = mp.get_context(context)
        self._conn, child = ctx.Pipe()
        self._process = ctx.Process(target=_serve, args=(child, env_name, dict(env_kwargs or {})), daemon=True)
        self._process.start()
        child.close()
        self.in_flight = False

    def reset(self, seed: int) -> np.ndarray:
        self._conn.send(("reset", int(seed)))
        return self._conn.recv()

    def send(self, actions: np.ndarray, reset_seed: int) -> None:
        """Start executing ``actions (h, A)``; :meth:`receive` returns what they did."""
        self._conn.send(("chunk", np.asarray(actions, dtype=np.float32), int(reset_seed)))
        self.in_flight = True

    def receive(self) -> ChunkSteps:
        steps = self._conn.recv()
        self.in_flight = False
        return steps

    def close(self) -> None:
        if self._process.is_alive():
            try:
                if self.in_flight:
                    self._conn.recv()
                self._conn.send(None)
            except (BrokenPipeError, EOFError, OSError):
                pass
            self._process.join(timeout=10)
            if self._process.is_alive():
                self._process.kill()
        self._conn.close()

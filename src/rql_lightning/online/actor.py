"""The one environment process of the online phase: it executes a chunk while training goes on.

The trainer sends a chunk of ``h`` actions and keeps updating; the worker process executes them one
step at a time (as the release's ``ActionChunkingWrapper`` pops one action per ``env.step``), stops at
the episode's end (the rest of the chunk is dropped, as the release clears its queue on reset), resets
with the seed it was given, and sends back what each step recorded. The trainer waits only when it
needs the next observation, i.e. when the chunk's steps take longer than the updates they pay for.
"""

from __future__ import annotations

import multiprocessing as mp
from dataclasses import dataclass
from typing import Any

import numpy as np

from rql_lightning.envs.make import make_eval_env


@dataclass
class ChunkSteps:
    """What executing one chunk recorded, one row per step taken (``n <= h``).

    observations (n, O): the state each action was taken in.  actions (n, A): the actions executed.
    rewards, terminated, truncated, success (n,): the env's per-step outcome.
    next_observation (O,): the state to act in next, the reset's when the episode ended.
    """

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


def run_chunk(env, observation: np.ndarray, actions: np.ndarray, reset_seed: int) -> ChunkSteps:
    """Execute ``actions (h, A)`` from ``observation``; reset with ``reset_seed`` if the episode ends."""
    rows: dict[str, list] = {
        k: [] for k in ("observations", "actions", "rewards", "terminated", "truncated", "success")
    }
    for action in actions:
        rows["observations"].append(observation)
        observation, reward, terminated, truncated, info = env.step(action)
        rows["actions"].append(action)
        rows["rewards"].append(float(reward))
        rows["terminated"].append(bool(terminated))
        rows["truncated"].append(bool(truncated))
        rows["success"].append(float(info.get("success", 0.0)))
        if terminated or truncated:
            observation, _ = env.reset(seed=int(reset_seed))
            break
    arrays = {k: np.asarray(v) for k, v in rows.items()}
    return ChunkSteps(**arrays, next_observation=np.asarray(observation))


def _serve(conn, env_name: str, env_kwargs: dict[str, Any]) -> None:
    """The worker's loop: ``("reset", seed)`` -> observation; ``("chunk", actions, seed)`` -> ChunkSteps."""
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
            else:
                steps = run_chunk(env, observation, message[1], message[2])
                observation = steps.next_observation
                conn.send(steps)
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

"""Wrappers of evaluation envs: deterministic resets, optional frames, whole action chunks per step.

OGBench's resets take settling steps with an unseedable ``action_space.sample()``, leaving a MuJoCo solver warm
start that differs between runs (observations then differ at 1e-14): :class:`EvalEnvWrapper` zeroes
``MjData.qacc_warmstart`` after every reset, which makes rollouts bitwise reproducible. Rendering needs a GL
backend chosen before MuJoCo is imported (headless: ``MUJOCO_GL=egl`` or ``osmesa``); if it fails, a warning,
and the frames stay empty.
"""

from __future__ import annotations

import warnings
from typing import Any

import gymnasium
import numpy as np

__all__ = ["ChunkStepWrapper", "EvalEnvWrapper"]


class EvalEnvWrapper(gymnasium.Wrapper):
    """Outermost wrapper: deterministic resets; ``record`` (``VectorEnv.set_attr``) stores a frame after the reset,
    every ``frame_skip``-th step and the last step, for :meth:`take_frames` (``(T, H, W, 3)`` uint8). ``info_keys``
    keeps only those infos (batching OGBench's ~20 arrays a step costs as much as the step itself).
    """

    def __init__(self, env: gymnasium.Env, info_keys: tuple[str, ...] | None = None, frame_skip: int = 1):
        super().__init__(env)
        self.info_keys = info_keys
        self.record = False
        self.frame_skip = max(1, int(frame_skip))
        self._t = 0
        self._frames: list[np.ndarray] = []
        self._render_failed = False

    def _capture(self) -> None:
        if not self.record or self._render_failed:
            return
        try:
            frame = self.env.unwrapped.render()
        except Exception as err:  # noqa: BLE001  (no GL backend, etc.; rendering is optional)
            self._render_failed = True
            self._frames = []
            warnings.warn(
                f"Rendering disabled: {type(err).__name__}: {err} (headless: set MUJOCO_GL=egl or osmesa)",
                RuntimeWarning,
                stacklevel=2,
            )
            return
        self._frames.append(np.asarray(frame, dtype=np.uint8).copy())

    def _filter(self, info: dict[str, Any]) -> dict[str, Any]:
        if self.info_keys is None:
            return info
        return {k: info[k] for k in self.info_keys if k in info}

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        obs, info = self.env.reset(seed=seed, options=options)
        warmstart = getattr(getattr(self.env.unwrapped, "_data", None), "qacc_warmstart", None)
        if warmstart is not None:
            warmstart[:] = 0.0
        self._frames = []
        self._t = 0
        self._capture()
        return obs, self._filter(info)

    def step(self, action):
        obs, reward, terminated, truncated, info = self.env.step(action)
        self._t += 1
        if self._t % self.frame_skip == 0 or terminated or truncated:
            self._capture()
        return obs, reward, terminated, truncated, self._filter(info)

    def take_frames(self) -> np.ndarray | None:
        frames, self._frames = self._frames, []
        if not frames:
            return None
        return np.stack(frames)


class ChunkStepWrapper(gymnasium.Wrapper):
    """A whole chunk ``(h, act_dim)`` per ``step``, run open loop in the worker (one round trip per chunk, not per
    step); stops at the episode's end, the reward summed and ``info["steps"]`` the steps taken."""

    def __init__(self, env: gymnasium.Env, chunk_size: int):
        super().__init__(env)
        space = env.action_space
        self.action_space = gymnasium.spaces.Box(
            np.repeat(space.low[None], chunk_size, axis=0),
            np.repeat(space.high[None], chunk_size, axis=0),
            dtype=space.dtype,
        )

    def step(self, chunk):
        total, steps = 0.0, 0
        for action in chunk:
            obs, reward, terminated, truncated, info = self.env.step(action)
            total += float(reward)
            steps += 1
            if terminated or truncated:
                break
        return obs, total, terminated, truncated, {**info, "steps": steps}

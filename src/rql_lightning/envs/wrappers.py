"""Wrappers of evaluation envs: deterministic resets, optional frames, whole action chunks per step.

Determinism
    OGBench's manipulation envs take two "settling" steps with ``action_space.sample()`` inside ``reset``;
    that action space is built fresh on every access and cannot be seeded, so the MuJoCo solver warm-start
    left behind differs between runs (observations then differ at the 1e-14 level).  :class:`EvalEnvWrapper`
    zeroes ``MjData.qacc_warmstart`` after every reset, which makes rollouts bitwise reproducible.  The warm
    start only seeds the constraint solver's iterations, so the dynamics are unchanged beyond solver tolerance.

Frames
    Frames come from ``env.unwrapped.render()`` (the ``front`` camera, ``width``/``height`` env kwargs,
    200x200 by default): one after the reset, then one after every ``frame_skip``-th step and after the last
    step (``T + 1`` frames for a ``T``-step episode with ``frame_skip=1``).  Software rendering (EGL or OSMesa
    on llvmpipe) takes 0.1-0.2 s a frame.  MuJoCo offscreen rendering needs a GL backend chosen *before*
    MuJoCo is imported: on a headless machine launch with ``MUJOCO_GL=egl`` (or ``osmesa``, Debian package
    ``libosmesa6``).  If rendering fails, a warning is issued and the frames stay empty; evaluation itself is
    unaffected.
"""

from __future__ import annotations

import warnings
from typing import Any

import gymnasium
import numpy as np

__all__ = ["ChunkStepWrapper", "EvalEnvWrapper"]


class EvalEnvWrapper(gymnasium.Wrapper):
    """Outermost wrapper of evaluation envs: deterministic resets and optional frame recording.

    ``record`` (settable through ``VectorEnv.set_attr``) makes the next episodes store a rendered frame after
    the reset, after every ``frame_skip``-th step and after the episode's last step; :meth:`take_frames`
    returns them as a ``(T, H, W, 3)`` uint8 array and clears them.
    ``info_keys``, if not None, restricts step/reset infos to those keys (OGBench infos carry ~20 arrays per
    step, and batching/pickling them costs about as much as the simulation step itself).
    """

    def __init__(self, env: gymnasium.Env, info_keys: tuple[str, ...] | None = None, frame_skip: int = 1):
        super().__init__(env)
        self.info_keys = info_keys
        self.record = False
        self.frame_skip = max(1, int(frame_skip))
        self._t = 0
        self._frames: list[np.ndarray] = []
        self._render_failed = False

    def _zero_warmstart(self) -> None:
        data = getattr(self.env.unwrapped, "_data", None)
        warmstart = getattr(data, "qacc_warmstart", None)
        if warmstart is not None:
            warmstart[:] = 0.0

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
        self._zero_warmstart()
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
    """Takes a whole action chunk ``(h, act_dim)`` per ``step``, executed open loop in the worker.

    Stops early when the episode ends; the reward is the sum over the steps taken and ``info["steps"]`` their
    number, ``info`` otherwise that of the last step.  One vector-env round trip per chunk instead of per step
    (inter-process messaging costs 0.1-0.3 ms a step, a sizeable share of a ~1 ms MuJoCo step).
    """

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

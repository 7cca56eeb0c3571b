"""Policies and constants shared by the rollout and evaluation-callback tests (cube-single task 1)."""

from __future__ import annotations

import numpy as np

ENV = "cube-single-singletask-task1-v0"
DATASET = "cube-single-play-singletask-task1-v0"
ACT_DIM = 5
T_MAX = 200

_CENTER = np.array([0.425, 0.0, 0.0])
_GOAL = np.array([0.425, -0.1, 0.02])  # cube-single task1 goal (OGBench CubeEnv.set_tasks)


def scripted_policy(obs: np.ndarray) -> np.ndarray:
    """Deterministic, state-dependent pick-and-carry controller for cube-single task1 (chunk of 1).

    Observation layout (CubeEnv, single cube): effector xyz 12:15, yaw cos/sin 15:17, gripper opening 17,
    cube xyz 19:22, cube yaw cos/sin 26:28; positions are (x - center) * 10.  Holding the cube within 4 cm
    of the goal already counts as success.
    """
    eff = obs[:, 12:15] / 10 + _CENTER
    blk = obs[:, 19:22] / 10 + _CENTER
    grip = obs[:, 17] / 3
    yaw_err = np.arctan2(obs[:, 27], obs[:, 26]) - np.arctan2(obs[:, 16], obs[:, 15])
    yaw_err = (yaw_err + np.pi / 4) % (np.pi / 2) - np.pi / 4
    out = np.zeros((obs.shape[0], ACT_DIM))
    for i in range(obs.shape[0]):
        if blk[i, 2] > 0.03 and np.linalg.norm(blk[i] - eff[i]) < 0.03:  # holding: carry to the goal
            near = np.linalg.norm(_GOAL[:2] - blk[i, :2]) < 0.01
            out[i, :3] = (np.array([*_GOAL[:2], 0.06 if near else 0.08]) - eff[i]) / 0.05
            out[i, 4] = 1.0
        elif np.linalg.norm(blk[i, :2] - eff[i, :2]) > 0.01 or abs(yaw_err[i]) > 0.1:  # hover and align
            out[i, :3] = (np.array([*blk[i, :2], 0.10]) - eff[i]) / 0.05
            out[i, 3] = yaw_err[i] / 0.3
            out[i, 4] = -1.0
        elif eff[i, 2] > blk[i, 2] + 0.005 and grip[i] < 0.1:  # descend, open
            out[i, :3] = (blk[i] - eff[i]) / 0.05
            out[i, 4] = -1.0
        else:  # close and lift
            out[i, 4] = 1.0
            out[i, 2] = 1.0 if grip[i] > 0.5 else 0.0
    return out[:, None, :]


class CountingZeroPolicy:
    def __init__(self, chunk_size: int):
        self.chunk_size = chunk_size
        self.batch_sizes: list[int] = []

    def __call__(self, obs: np.ndarray) -> np.ndarray:
        assert obs.dtype == np.float32 and obs.ndim == 2
        self.batch_sizes.append(obs.shape[0])
        return np.zeros((obs.shape[0], self.chunk_size, ACT_DIM), dtype=np.float32)

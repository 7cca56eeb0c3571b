"""A one-state problem with two action modes, the toy every learning test of a method uses.

The dataset holds one-step episodes from a single state: half the actions near ``GOOD = -0.5``
(reward 1), half near ``BAD = +0.5`` (reward 0); the task ends after the action (mask 0), so
``Q = reward``. BC reproduces both modes; a method that improves on the data picks ``GOOD``.
"""

from __future__ import annotations

import torch

from rql_lightning.data.windows import WindowSampler

GOOD, BAD = -0.5, 0.5


def two_mode_sampler(n_episodes: int = 512, seed: int = 0) -> WindowSampler:
    g = torch.Generator().manual_seed(seed)
    good = torch.arange(n_episodes) % 2 == 0
    action = torch.where(good, GOOD, BAD) + 0.05 * torch.randn(n_episodes, generator=g)
    # Each episode: the decision step, then a closing step (never a window start).
    obs = torch.zeros(2 * n_episodes, 1)
    actions = torch.zeros(2 * n_episodes, 1)
    actions[0::2, 0] = action
    rewards = torch.zeros(2 * n_episodes)
    rewards[0::2] = good.float()
    terminals = torch.zeros(2 * n_episodes)
    terminals[1::2] = 1
    masks = torch.ones(2 * n_episodes)
    masks[0::2] = 0
    return WindowSampler(obs, actions, rewards, terminals, masks, chunk_size=1)

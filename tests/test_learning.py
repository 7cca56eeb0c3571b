"""RQL learns: on a one-state problem with two action modes, it picks the better mode.

The dataset holds one-step episodes from a single state: half the actions near -0.5 (reward
1), half near +0.5 (reward 0); the task ends after the action (mask 0), so Q = reward. A
flow policy trained by BC alone reproduces both modes; RQL's Q term moves its mass to -0.5.
"""

from __future__ import annotations

import torch

from rql_lightning.data.windows import WindowSampler
from rql_lightning.modules.rql import RQLModule

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


def train_and_sample(alpha: float, steps: int = 600, seed: int = 0) -> torch.Tensor:
    torch.manual_seed(seed)
    m = RQLModule(
        obs_dim=1,
        action_dim=1,
        chunk_size=1,
        flow_steps=10,
        num_critics=2,
        actor_hidden_dims=[64, 64],
        critic_hidden_dims=[64, 64],
        alpha=alpha,
        expectile=0.7,
        rho=0.0,
        actor_lr=1e-3,
        critic_lr=1e-3,
    )
    opt = m.configure_optimizers()
    sampler, g = two_mode_sampler(), torch.Generator().manual_seed(seed)
    for _ in range(steps):
        m.update(sampler.sample(128, g), m.draw(128), opt)
    with torch.no_grad():
        return m.policy.sample(torch.zeros(2000, 1), torch.randn(2000, 1)).squeeze(-1)


def test_rql_prefers_the_better_mode_while_bc_keeps_both():
    rql = train_and_sample(alpha=0.03)
    bc = train_and_sample(alpha=1000.0)
    rql_good = (rql < 0).float().mean().item()
    bc_good = (bc < 0).float().mean().item()
    assert rql_good > 0.9, rql_good
    assert 0.3 < bc_good < 0.7, bc_good
    # BC keeps real mass near each of the data's two modes; RQL's sits near the good one.
    assert ((bc - GOOD).abs() < 0.3).float().mean() > 0.25
    assert ((bc - BAD).abs() < 0.3).float().mean() > 0.25
    assert ((rql - GOOD).abs() < 0.3).float().mean() > 0.8

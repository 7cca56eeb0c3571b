"""RQL learns: on the two-mode problem of ``two_mode.py``, it picks the better mode.

A flow policy trained by BC alone (huge ``alpha``) reproduces both modes; RQL's Q term moves
its mass to the rewarded one.
"""

from __future__ import annotations

import pytest
import torch

from rql_lightning.modules.rql import RQLModule
from tests.modules.two_mode import BAD, GOOD, two_mode_sampler


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


@pytest.mark.slow
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

"""The shared loss pieces: what each computes, on known inputs (RQL's numbers: tests/modules/test_parity.py)."""

from __future__ import annotations

import torch

from rql_lightning import losses
from rql_lightning.batch import ChunkBatch, Draws
from rql_lightning.flow import FlowPolicy
from rql_lightning.nets import EnsembleMLP
from tests.test_flow import KnownFlow

B, D = 6, 3


def batch_of(chunks: torch.Tensor, **fields: torch.Tensor) -> ChunkBatch:
    n = len(chunks)
    base = dict(
        observations=chunks.clone(),  # the state names its chunk, so v(s, x, t) can know the target
        action_chunks=chunks,
        rewards=torch.ones(n, 2),
        next_observations=torch.zeros(n, D),
        bootstrap_mask=torch.ones(n),
        valid=torch.ones(n),
        action_mask=torch.ones(n, D),
    )
    return ChunkBatch(**{**base, **fields})


def test_flow_matching_loss_vanishes_on_the_straight_path_velocity_and_masks_by_entry():
    torch.manual_seed(0)
    chunks = torch.rand(B, D) * 2 - 1
    draws = Draws.sample(B, D, flow_steps=10)
    # The straight path's velocity a - x0 = (a - x_t) / (1 - t), with a read from the state.
    exact = KnownFlow(lambda s, x, t: (s - x) / (1 - t), flow_steps=10, dim=D)
    assert losses.flow_matching_loss(exact, batch_of(chunks), draws).loss.abs() < 1e-5
    # Off by one on every entry: the mean counts masked entries as zeros and divides by B * D.
    off = KnownFlow(lambda s, x, t: (s - x) / (1 - t) + 1.0, flow_steps=10, dim=D)
    mask = torch.ones(B, D)
    mask[:, 1:] = 0
    fm = losses.flow_matching_loss(off, batch_of(chunks, action_mask=mask), draws)
    torch.testing.assert_close(fm.loss, torch.tensor(1.0 / D))
    weight = torch.arange(B, dtype=torch.float32)
    weighted = losses.flow_matching_loss(off, batch_of(chunks), draws, weight=weight).loss
    torch.testing.assert_close(weighted, weight.mean())


def test_expectile_loss_weights_errors_above_and_below_the_target():
    diff = torch.tensor([[2.0, -2.0, 1.0]])  # y - Q for K = 1, B = 3
    valid = torch.tensor([1.0, 1.0, 0.0])
    # kappa 0.9: 0.9 * 4 above, 0.1 * 4 below, the invalid window a zero in the mean of 3.
    torch.testing.assert_close(losses.expectile_loss(diff, 0.9, valid), torch.tensor((3.6 + 0.4) / 3))
    torch.testing.assert_close(losses.expectile_loss(diff, 0.5, torch.ones(3)), 0.5 * diff.square().mean())


def test_td_target_bootstraps_only_where_the_mask_allows():
    rewards = torch.tensor([[1.0, 1.0], [1.0, 0.0]])
    batch = batch_of(torch.zeros(2, D), rewards=rewards, bootstrap_mask=torch.tensor([1.0, 0.0]))
    y = losses.td_target(batch, next_value=torch.tensor([10.0, 10.0]), discount=0.5)
    torch.testing.assert_close(y, torch.tensor([1.0 + 0.5 + 0.25 * 10.0, 1.0]))


def test_critic_at_scores_every_member_at_the_given_flow_time():
    torch.manual_seed(0)
    critic = EnsembleMLP(4, 2 + D + 1, [8], 1)
    obs, x = torch.randn(B, 2), torch.randn(B, D)
    q = losses.critic_at(critic, obs, x, 1.0)
    assert q.shape == (4, B)
    torch.testing.assert_close(q, losses.critic_at(critic, obs, x, torch.ones(B, 1)))
    assert not torch.allclose(q, losses.critic_at(critic, obs, x, 0.0))


def test_critic_loss_reverses_the_flow_without_gradient_to_the_policy():
    torch.manual_seed(0)
    policy = FlowPolicy(obs_dim=2, action_dim=D, chunk_size=1, hidden_dims=[16], flow_steps=5)
    critic, target = EnsembleMLP(2, 2 + D + 1, [16], 1), EnsembleMLP(2, 2 + D + 1, [16], 1)
    batch = batch_of(torch.rand(B, D), observations=torch.randn(B, 2), next_observations=torch.randn(B, 2))
    loss, info = losses.critic_loss(critic, target, policy, batch, Draws.sample(B, D, 5), 0.99, 0.7, 0.5)
    assert not info["x_f"].requires_grad and not info["td_target"].requires_grad
    assert all(g is None for g in torch.autograd.grad(loss, list(policy.parameters()), allow_unused=True))
    assert all(g is not None for g in torch.autograd.grad(loss, list(critic.parameters()), allow_unused=True))

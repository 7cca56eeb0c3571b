"""The premise diagnostics on flows and critics whose answers are known in closed form."""

from __future__ import annotations

import math

import pytest
import torch

from rql_lightning import premise_measures as diagnostics
from tests.diagnostics.known_flows import KnownFlow, LinearCritic


def dyadic(*shape: int, generator: torch.Generator) -> torch.Tensor:
    """Values k / 64 in [-1, 1): every sum below is exact in float32."""
    return torch.randint(-64, 64, shape, generator=generator).float() / 64


def test_round_trip_is_exactly_zero_for_a_velocity_constant_along_the_path():
    g = torch.Generator().manual_seed(0)
    obs, chunk = dyadic(32, 2, generator=g), dyadic(32, 3, generator=g)
    # v depends on s only: constant along every path; with dyadic numbers each Euler step is exact.
    policy = KnownFlow(lambda s, x, f: (s[:, :1] / 4).expand_as(x) + 0 * f, flow_steps=8)
    for depth in (1.0, 0.5, 0.25):
        err = diagnostics.round_trip_error(policy, obs, chunk, torch.full((32,), depth))
        assert err["max"].item() == 0.0 and err["mean"].item() == 0.0


@pytest.mark.parametrize("flow_steps", [5, 10, 20])
def test_round_trip_error_attains_the_euler_bound_when_the_second_derivative_is_constant(flow_steps):
    """v = c f: x'' = c, so each pass's global Euler error is F h^2 c / 2 with h = d / F; the two passes
    add (the reversed point is integrated forward), so the round trip is off by exactly c d^2 / F."""
    c = 0.8
    g = torch.Generator().manual_seed(1)
    obs, chunk = torch.randn(64, 2, generator=g), torch.rand(64, 3, generator=g) * 2 - 1
    policy = KnownFlow(lambda s, x, f: c * f.expand_as(x), flow_steps=flow_steps)
    depth = torch.rand(64, generator=g)
    back = diagnostics.round_trip(policy, obs, chunk, depth)
    bound = c * depth.square() / flow_steps  # (B,)
    torch.testing.assert_close((back - chunk).abs(), bound.unsqueeze(-1).expand_as(chunk), rtol=1e-4, atol=1e-6)
    err = diagnostics.round_trip_error(policy, obs, chunk, torch.ones(64))
    assert err["max"].item() == pytest.approx(c / flow_steps, rel=1e-4)


def test_round_trip_error_of_a_linear_flow_is_its_closed_form_and_shrinks_like_one_over_f():
    """v = lam x: reversing multiplies by (1 - lam h)^F, going forward by (1 + lam h)^F."""
    lam, g = 0.9, torch.Generator().manual_seed(2)
    obs, chunk = torch.randn(16, 2, generator=g), torch.rand(16, 3, generator=g) * 2 - 1
    errors = []
    for steps in (10, 100):
        policy = KnownFlow(lambda s, x, f: lam * x, flow_steps=steps)
        h = 1.0 / steps
        expected = (1 - (1 - (lam * h) ** 2) ** steps) * chunk.abs()
        back = diagnostics.round_trip(policy, obs, chunk, torch.ones(16))
        torch.testing.assert_close((back - chunk).abs(), expected, rtol=1e-3, atol=1e-6)
        errors.append(diagnostics.round_trip_error(policy, obs, chunk, torch.ones(16))["max"].item())
    assert 0.09 < errors[1] / errors[0] < 0.11  # first order: ten times the steps, a tenth of the error


def test_reversed_noise_of_a_known_affine_flow_has_the_known_mean_and_std():
    """v = lam x + b reverses chunk a to r^F a - (b / lam)(1 - r^F), r = 1 - lam / F: an affine map, so the
    reversed noise's mean and std follow the chunks'. lam and b are chosen to map N(0.7, 2^2) to N(0, 1)."""
    steps, sigma, mu = 10, 2.0, 0.7
    r = 0.5 ** (1 / steps)  # r^F = 1 / sigma
    lam = steps * (1 - r)
    b = lam * mu * (1 / sigma) / (1 - 1 / sigma)
    policy = KnownFlow(lambda s, x, f: lam * x + b, flow_steps=steps, dim=4)
    g = torch.Generator().manual_seed(3)
    chunk = mu + sigma * torch.randn(4096, 4, generator=g)
    obs = torch.zeros(4096, 2)
    directions = torch.randn(32, 4, generator=g)
    directions = directions / directions.norm(dim=1, keepdim=True)
    stats = diagnostics.reversed_noise_stats(policy, obs, chunk, directions)
    scale = r**steps
    assert stats["mean"].item() == pytest.approx(scale * chunk.mean().item() - b / lam * (1 - scale), abs=1e-5)
    assert stats["std"].item() == pytest.approx(scale * chunk.std(correction=0).item(), rel=1e-5)
    assert abs(stats["mean"].item()) < 0.03 and stats["std"].item() == pytest.approx(1.0, abs=0.03)
    assert stats["sliced_w1"].item() < 0.04  # N(0, I) samples: only sampling noise remains
    # Without the flow (v = 0) the "noise" is the data itself: far from N(0, I).
    still = diagnostics.reversed_noise_stats(KnownFlow(lambda s, x, f: 0 * x, steps, dim=4), obs, chunk, directions)
    assert still["sliced_w1"].item() > 0.5


def test_sliced_w1_is_exact_for_one_sample_and_measures_a_shift():
    # One sample x along e_1: W1 to N(0, 1) is E|x - Z| = x (2 Phi(x) - 1) + 2 phi(x).
    e1 = torch.tensor([[1.0, 0.0]])
    for x in (-1.3, 0.0, 0.4, 2.5):
        expected = x * math.erf(x / math.sqrt(2)) + 2 * math.exp(-x * x / 2) / math.sqrt(2 * math.pi)
        got = diagnostics.sliced_w1_to_normal(torch.tensor([[x, 5.0]]), e1).item()
        assert got == pytest.approx(expected, rel=1e-5)
    # N(mu, I): along a unit direction theta the projections are N(theta . mu, 1), W1 = |theta . mu|.
    g = torch.Generator().manual_seed(4)
    mu = torch.tensor([1.0, -0.5, 0.25])
    samples = torch.randn(20000, 3, generator=g) + mu
    directions = torch.randn(16, 3, generator=g)
    directions = directions / directions.norm(dim=1, keepdim=True)
    expected = (directions @ mu).abs().mean().item()
    assert diagnostics.sliced_w1_to_normal(samples, directions).item() == pytest.approx(expected, abs=0.02)


def test_q_is_flat_along_the_trajectory_when_the_critic_agrees_with_the_flow():
    """v = c: x_f = a - c d at f = 1 - d, so Q = sum(x) + w f is constant along it iff w = -sum(c)."""
    steps, g = 10, torch.Generator().manual_seed(5)
    obs, chunk = torch.randn(64, 2, generator=g), torch.rand(64, 3, generator=g)
    c = torch.tensor([0.5, -0.25, 1.0])  # sum 1.25
    policy = KnownFlow(lambda s, x, f: c.expand_as(x), flow_steps=steps)
    flat = diagnostics.q_along_trajectory(policy, LinearCritic(2, w=-1.25), obs, chunk)
    assert flat["traj_std"].item() < 1e-6
    assert flat["chunk_std"].item() == pytest.approx(chunk.sum(-1).std(correction=0).item(), rel=1e-5)
    tilted = diagnostics.q_along_trajectory(policy, LinearCritic(2, w=-0.25), obs, chunk)
    grid_std = (torch.arange(steps + 1) / steps).std(correction=0).item()  # std of f over 0, 1/F, ..., 1
    assert tilted["traj_std"].item() == pytest.approx(1.0 * grid_std, rel=1e-5)  # dQ/df = -0.25 + 1.25
    assert tilted["ratio"].item() == pytest.approx(grid_std / flat["chunk_std"].item(), rel=1e-5)


def test_premise_diagnostics_names_every_number():
    g = torch.Generator().manual_seed(6)
    obs, chunk = torch.randn(8, 2, generator=g), torch.rand(8, 3, generator=g)
    from rql_lightning.batch import ChunkBatch

    batch = ChunkBatch(obs, chunk, torch.zeros(8, 1), obs, torch.ones(8), torch.ones(8), torch.ones(8, 3))
    policy = KnownFlow(lambda s, x, f: 0.5 * x, flow_steps=4)
    out = diagnostics.premise_diagnostics(policy, LinearCritic(2, 0.0), batch, torch.rand(8, generator=g), torch.eye(3))
    assert sorted(out) == sorted(
        [f"round_trip_{s}_{d}" for s in ("mean", "max") for d in ("d1", "du")]
        + ["noise_mean", "noise_std", "noise_sliced_w1", "q_traj_std", "q_chunk_std", "q_ratio"]
    )
    assert all(v.dim() == 0 and torch.isfinite(v) for v in out.values())

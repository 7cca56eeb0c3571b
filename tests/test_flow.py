"""Flow reversal inverts forward sampling."""

from __future__ import annotations

import torch

from rql_lightning.flow import FlowPolicy


class KnownFlow(FlowPolicy):
    """A FlowPolicy whose velocity is a given function instead of the network."""

    def __init__(self, fn, flow_steps: int, dim: int = 3) -> None:
        super().__init__(obs_dim=2, action_dim=dim, chunk_size=1, hidden_dims=[8], flow_steps=flow_steps)
        self.fn = fn

    def velocity(self, obs, x, f):
        return self.fn(obs, x, f)


def roundtrip_error(policy: FlowPolicy, x: torch.Tensor, obs: torch.Tensor) -> float:
    x0, f = policy.reverse(obs, x, torch.ones(len(x)))
    assert torch.allclose(f, torch.zeros_like(f), atol=1e-6)
    back = policy.sample(obs, x0, clip=False)
    return (back - x).abs().max().item()


def test_reversal_is_exact_for_velocity_constant_along_the_path():
    torch.manual_seed(0)
    obs, x = torch.randn(64, 2), torch.rand(64, 3) * 2 - 1
    # v depends on the state s and on f, but not on x: constant along each path's x.
    policy = KnownFlow(lambda s, x, f: s.sum(-1, keepdim=True) * torch.ones_like(x) + 0 * f, flow_steps=10)
    assert roundtrip_error(policy, x, obs) < 1e-6


def test_reversal_inverts_sampling_within_euler_error():
    torch.manual_seed(0)
    obs, x = torch.randn(64, 2), torch.rand(64, 3) * 2 - 1
    linear = lambda s, x, f: 0.8 * x + torch.sin(3 * f)  # noqa: E731  (flow x' = 0.8 x + sin 3f)
    errors = [roundtrip_error(KnownFlow(linear, steps), x, obs) for steps in (10, 100)]
    assert errors[0] < 0.3  # first-order Euler error at F = 10 for this field
    # First-order method: ten times the steps, about a tenth of the error.
    assert errors[1] < errors[0] / 5


def test_partial_reversal_lands_on_the_flow_through_the_chunk():
    """Reversing by depth d from x and integrating forward over [1-d, 1] returns to x (exact for constant v)."""
    torch.manual_seed(0)
    obs, x = torch.randn(16, 2), torch.rand(16, 3)
    policy = KnownFlow(lambda s, x, f: torch.full_like(x, 0.5), flow_steps=10)
    depth = torch.rand(16)
    x_f, f = policy.reverse(obs, x, depth)
    torch.testing.assert_close(f.squeeze(-1), 1 - depth)
    torch.testing.assert_close(x_f, x - 0.5 * depth.unsqueeze(-1))

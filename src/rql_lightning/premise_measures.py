"""Instruments for RQL's premise: does reversing the flow from a dataset chunk land on a virtual on-policy
trajectory that ends at that chunk, so that every point on it may share the chunk's target? Pure functions of
(policy, critic, batch); :mod:`rql_lightning.callbacks.premise_diagnostics` fixes the batch, depths and directions.
"""

from __future__ import annotations

import math

import torch

from rql_lightning.batch import ChunkBatch
from rql_lightning.flow import FlowPolicy
from rql_lightning.losses import critic_at
from rql_lightning.nets import EnsembleMLP


def round_trip(policy: FlowPolicy, obs: torch.Tensor, chunk: torch.Tensor, depth: torch.Tensor) -> torch.Tensor:
    """``chunk (B, D)`` reversed by ``depth (B,)``, then ``F`` forward Euler steps of ``d / F`` back to ``f = 1``."""
    x_f, f = policy.reverse(obs, chunk, depth)
    return policy.euler(obs, x_f, f, (depth / policy.flow_steps).unsqueeze(-1))[0]


def round_trip_error(
    policy: FlowPolicy, obs: torch.Tensor, chunk: torch.Tensor, depth: torch.Tensor
) -> dict[str, torch.Tensor]:
    """Mean and max over batch and dimensions of ``|round_trip - chunk|``."""
    err = (round_trip(policy, obs, chunk, depth) - chunk).abs()
    return {"mean": err.mean(), "max": err.max()}


def sliced_w1_to_normal(x: torch.Tensor, directions: torch.Tensor) -> torch.Tensor:
    """Sliced W1 distance of ``x (N, D)`` to ``N(0, I)``, mean over unit ``directions (P, D)``, exact per direction:
    ``sum_i int_{q_i}^{q_{i+1}} |x_(i) - z| phi(z) dz`` between the normal's ``i/N`` quantiles (in float64)."""
    proj = (x.double() @ directions.double().T).sort(dim=0).values  # (N, P)
    n = proj.shape[0]
    levels = torch.arange(n + 1, dtype=torch.float64, device=x.device) / n  # Phi at the quantiles
    q = torch.special.ndtri(levels)  # -inf .. inf
    lo_cdf, hi_cdf = levels[:-1, None], levels[1:, None]
    lo, hi = q[:-1, None], q[1:, None]
    c = torch.maximum(torch.minimum(proj, hi), lo)  # where |x - z| changes sign inside the cell

    def pdf(t: torch.Tensor) -> torch.Tensor:
        return torch.exp(-0.5 * t.square()) / math.sqrt(2.0 * math.pi)  # 0 at +-inf

    # G(t) = int_{-inf}^t (x - z) phi(z) dz = x Phi(t) + phi(t); the cell's integral is 2 G(c) - G(lo) - G(hi).
    cell = 2.0 * (proj * torch.special.ndtr(c) + pdf(c)) - (proj * lo_cdf + pdf(lo)) - (proj * hi_cdf + pdf(hi))
    return cell.sum(dim=0).mean().to(x.dtype)


def reversed_noise_stats(
    policy: FlowPolicy, obs: torch.Tensor, chunk: torch.Tensor, directions: torch.Tensor
) -> dict[str, torch.Tensor]:
    """The chunks reversed to ``f = 0`` (``d = 1``): mean and std over all entries, sliced W1 to ``N(0, I)``."""
    x0, _ = policy.reverse(obs, chunk, torch.ones_like(chunk[:, 0]))
    return {"mean": x0.mean(), "std": x0.std(correction=0), "sliced_w1": sliced_w1_to_normal(x0, directions)}


def q_along_trajectory(
    policy: FlowPolicy, critic: EnsembleMLP, obs: torch.Tensor, chunk: torch.Tensor
) -> dict[str, torch.Tensor]:
    """Ensemble-mean ``Q(s, x_f, f)`` at reversed depths ``k / F``: ``traj_std`` (std over ``f``, mean over chunks),
    against ``chunk_std`` (std of ``Q(s, a, 1)`` across chunks), and their ``ratio``; one batched reversal."""
    steps, b = policy.flow_steps, obs.shape[0]
    depth = (torch.arange(steps + 1, device=obs.device).float() / steps).repeat_interleave(b)  # (F+1)*B
    obs_r, chunk_r = obs.repeat(steps + 1, 1), chunk.repeat(steps + 1, 1)
    x_f, f = policy.reverse(obs_r, chunk_r, depth)
    q = critic_at(critic, obs_r, x_f, f).mean(dim=0).view(steps + 1, b)  # row k: depth k/F
    traj_std, chunk_std = q.std(dim=0, correction=0).mean(), q[0].std(correction=0)
    return {"traj_std": traj_std, "chunk_std": chunk_std, "ratio": traj_std / chunk_std.clamp_min(1e-12)}


@torch.no_grad()
def premise_diagnostics(
    policy: FlowPolicy, critic: EnsembleMLP, batch: ChunkBatch, depth: torch.Tensor, directions: torch.Tensor
) -> dict[str, torch.Tensor]:
    """Every diagnostic above as scalar tensors named as logged (without ``diag/``); ``depth (B,)``: the second
    round trip's ``d ~ U(0, 1)``."""
    obs, chunk = batch.observations, batch.action_chunks
    out: dict[str, torch.Tensor] = {}
    for tag, d in (("d1", torch.ones_like(depth)), ("du", depth)):
        out.update({f"round_trip_{k}_{tag}": v for k, v in round_trip_error(policy, obs, chunk, d).items()})
    out.update({f"noise_{k}": v for k, v in reversed_noise_stats(policy, obs, chunk, directions).items()})
    out.update({f"q_{k}": v for k, v in q_along_trajectory(policy, critic, obs, chunk).items()})
    return out

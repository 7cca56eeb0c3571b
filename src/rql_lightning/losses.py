"""Loss pieces as deterministic functions of (networks, batch, draws), shared by every method, and RQL's two losses
built from them: docs/algorithm.md (A2)-(A7), (C1), (C2)."""

from __future__ import annotations

from typing import NamedTuple

import torch

from rql_lightning.batch import ChunkBatch, Draws
from rql_lightning.checks import VIRTUAL_STATES  # noqa: F401 (re-exported: the modes, named once in checks)
from rql_lightning.flow import FlowPolicy
from rql_lightning.nets import EnsembleMLP


def critic_at(
    critic: EnsembleMLP, obs: torch.Tensor, x: torch.Tensor, f: torch.Tensor | float, detach_params: bool = False
) -> torch.Tensor:
    """Every member's ``Q_j(s, x, f)``: ``obs (B, O)``, ``x (B, D)``, ``f (B, 1)`` or a flow time -> ``(K, B)``.
    ``detach_params`` holds the critic's weights fixed (an actor's Q term: the gradient reaches the actor only)."""
    if not isinstance(f, torch.Tensor):
        f = torch.full_like(obs[:, :1], f)
    return critic(torch.cat([obs, x, f], dim=-1), detach_params=detach_params).squeeze(-1)


def expectile_weight(diff: torch.Tensor, expectile: float) -> torch.Tensor:
    """``|kappa - 1(diff < 0)|``: kappa above the target, 1 - kappa below it."""
    return torch.where(diff >= 0, expectile, 1.0 - expectile)


def expectile_loss(diff: torch.Tensor, expectile: float, valid: torch.Tensor) -> torch.Tensor:
    """(A4) for ``diff = y - Q (K, B)``; invalid windows count as zeros in the mean (the reference's)."""
    return (valid * expectile_weight(diff, expectile) * diff.square()).mean()


def n_step_return(rewards: torch.Tensor, discount: float) -> torch.Tensor:
    """``sum_{i<h} gamma^i r_i`` for ``rewards (B, h)`` (already zeroed past episode ends)."""
    powers = discount ** torch.arange(rewards.shape[1], device=rewards.device, dtype=rewards.dtype)
    return rewards @ powers


def pessimistic_value(qs: torch.Tensor, rho: float) -> torch.Tensor:
    """``mean_j Q_j - rho * std_j Q_j`` over the ensemble axis of ``qs (K, B)`` (population std)."""
    return qs.mean(dim=0) - rho * qs.std(dim=0, correction=0)


def td_target(batch: ChunkBatch, next_value: torch.Tensor, discount: float) -> torch.Tensor:
    """``y = R_h + gamma^h m V(s')`` for ``next_value (B,)``, ``h = rewards.shape[1]``. Returns ``(B,)``."""
    horizon = batch.rewards.shape[1]
    return n_step_return(batch.rewards, discount) + discount**horizon * (batch.bootstrap_mask * next_value)


class FlowMatching(NamedTuple):
    """:func:`flow_matching_loss`'s result: the loss, the path point ``x_t (B, D)``, the velocity ``(B, D)``."""

    loss: torch.Tensor
    x_t: torch.Tensor
    velocity: torch.Tensor


def flow_matching_loss(
    policy: FlowPolicy, batch: ChunkBatch, draws: Draws, weight: torch.Tensor | None = None
) -> FlowMatching:
    """(A5) on dataset chunks, each sample weighted by ``weight (B,)`` (default 1)."""
    obs, chunk, t, x0 = batch.observations, batch.action_chunks, draws.bc_time, draws.bc_noise
    x_t = (1.0 - t) * x0 + t * chunk
    pred = policy.velocity(obs, x_t, t)
    err = batch.action_mask * (pred - (chunk - x0)).square()
    if weight is not None:
        err = weight.unsqueeze(-1) * err
    return FlowMatching(err.mean(), x_t, pred)


def reversed_time(depth: torch.Tensor, flow_steps: int) -> torch.Tensor:
    """``f = 1 - d`` as ``(B, 1)``, by the same running float32 sum as :meth:`FlowPolicy.reverse`."""
    step = (depth / flow_steps).unsqueeze(-1)
    f = torch.ones_like(step)
    for _ in range(flow_steps):
        f = f - step
    return f


def virtual_states(
    policy: FlowPolicy, batch: ChunkBatch, draws: Draws, mode: str = "reversal"
) -> tuple[torch.Tensor, torch.Tensor]:
    """(A2), (C1), (C2): the states ``(x_f (B, D), f (B, 1))``, ``f = 1 - d``, sharing the chunk's target (no grad).
    ``mode`` is one of :data:`VIRTUAL_STATES`, checked where it is set (the config's checks and ``RQLModule``)."""
    with torch.no_grad():
        if mode == "reversal":
            return policy.reverse(batch.observations, batch.action_chunks, draws.depth)
        f, x0 = reversed_time(draws.depth, policy.flow_steps), draws.policy_noise
        if mode == "interpolation":
            return (1.0 - f) * x0 + f * batch.action_chunks, f
        return policy.euler(batch.observations, x0, torch.zeros_like(f), f / policy.flow_steps)[0], f


def critic_loss(
    critic: EnsembleMLP,
    target_critic: EnsembleMLP,
    policy: FlowPolicy,
    batch: ChunkBatch,
    draws: Draws,
    discount: float,
    expectile: float,
    rho: float,
    mode: str = "reversal",
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """(A2)-(A4): every member regressed on the shared target at the :func:`virtual_states` of ``mode``."""
    with torch.no_grad():
        x_f, f = virtual_states(policy, batch, draws, mode)
        next_qs = critic_at(target_critic, batch.next_observations, draws.next_noise, 0.0)  # (K, B)
        y = td_target(batch, pessimistic_value(next_qs, rho), discount)
    q = critic_at(critic, batch.observations, x_f, f)  # (K, B)
    loss = expectile_loss(y - q, expectile, batch.valid)
    return loss, {"q": q, "td_target": y, "x_f": x_f, "f": f}


def actor_loss(
    policy: FlowPolicy,
    critic: EnsembleMLP,
    batch: ChunkBatch,
    draws: Draws,
    alpha: float,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """(A5)-(A7): flow-matching BC plus one Euler step of Q improvement (critic weights held fixed)."""
    bc, x_t, pred = flow_matching_loss(policy, batch, draws)
    t = draws.bc_time
    dt = 1.0 / policy.flow_steps
    x_next = x_t + pred * torch.clamp(1.0 - t, max=dt)
    f_next = torch.clamp(t + dt, max=1.0)
    q_pe = critic_at(critic, batch.observations, x_next, f_next, detach_params=True).mean(dim=0)
    q_term = -(q_pe * batch.valid).mean()
    return q_term + alpha * bc, {"bc_loss": bc, "q_term": q_term, "q_pe": q_pe, "pred": pred}

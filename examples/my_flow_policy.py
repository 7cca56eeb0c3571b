"""A new flow policy in one file: advantage-weighted flow behaviour cloning (AWFBC).

Actor: flow matching on dataset chunks, each sample weighted by ``exp(beta * A)`` (clipped at
``max_weight``), ``A = Q(s, a) - Q(s, pi(s))`` with ``pi`` the EMA flow policy.
Critic: expectile TD on dataset chunks at flow time ``f = 1`` with a SARSA-like target through
the EMA flow policy, ``y = R_h + gamma^h m mean_j Qbar_j(s', pi(s', z'), 1)``.

Run it (from the repository root; ``PYTHONPATH`` makes ``my_flow_policy`` importable,
``--config-dir`` puts ``examples/model/my_flow_policy.yaml`` in Hydra's search path):

    PYTHONPATH=examples rql-train --config-dir examples model=my_flow_policy
"""

from __future__ import annotations

import torch

from rql_lightning import losses
from rql_lightning.batch import ChunkBatch
from rql_lightning.losses import RQLDraws
from rql_lightning.modules.base import FlowQModule


class AdvantageWeightedFlowBC(FlowQModule):
    def __init__(self, *args, beta: float = 3.0, expectile: float = 0.7, max_weight: float = 100.0, **kwargs):
        super().__init__(*args, **kwargs)
        self.save_hyperparameters()  # new hyperparameters go to checkpoints (load_from_checkpoint)

    def q(self, critic, obs: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """``Q_j(s, x, f = 1)`` of complete chunks, ``(K, B)``."""
        return critic(torch.cat([obs, x, torch.ones_like(obs[:, :1])], dim=-1)).squeeze(-1)

    # The base class's draws (RQLDraws) carry what we need: next_noise, bc_noise, bc_time.
    def critic_loss(self, batch: ChunkBatch, draws: RQLDraws) -> tuple[torch.Tensor, dict]:
        hp = self.hparams
        with torch.no_grad():
            next_x = self.ema_policy.sample(batch.next_observations, draws.next_noise)
            next_q = self.q(self.target_critic, batch.next_observations, next_x).mean(dim=0)
            y = losses.n_step_return(batch.rewards, hp.discount)
            y = y + hp.discount**self.chunk_size * batch.bootstrap_mask * next_q
        q = self.q(self.critic, batch.observations, batch.action_chunks)
        diff = y - q
        loss = (batch.valid * losses.expectile_weight(diff, hp.expectile) * diff.square()).mean()
        return loss, {"q": q.detach()}

    def actor_loss(self, batch: ChunkBatch, draws: RQLDraws) -> tuple[torch.Tensor, dict]:
        hp = self.hparams
        obs, chunk, t, x0 = batch.observations, batch.action_chunks, draws.bc_time, draws.bc_noise
        with torch.no_grad():  # the weights: no gradient reaches the critic
            baseline = self.q(self.critic, obs, self.ema_policy.sample(obs, draws.next_noise)).mean(dim=0)
            adv = self.q(self.critic, obs, chunk).mean(dim=0) - baseline
            weight = torch.exp(hp.beta * adv).clamp(max=hp.max_weight)
        x_t = (1.0 - t) * x0 + t * chunk
        err = (batch.action_mask * (self.policy.velocity(obs, x_t, t) - (chunk - x0)).square()).mean(dim=-1)
        loss = (weight * err).mean()
        return loss, {"bc_loss": err.mean().detach(), "weight_mean": weight.mean()}

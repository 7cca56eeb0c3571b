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
from rql_lightning.batch import ChunkBatch, Draws
from rql_lightning.losses import critic_at
from rql_lightning.modules.base import FlowQModule


class AdvantageWeightedFlowBC(FlowQModule):
    default_name = "awfbc"  # the short name in results tables (a config's `name:` overrides it)

    def __init__(self, *args, beta: float = 3.0, expectile: float = 0.7, max_weight: float = 100.0, **kwargs):
        super().__init__(*args, **kwargs)
        self.save_hyperparameters()  # new hyperparameters go to checkpoints (load_from_checkpoint)

    # The base class's Draws carry what we need: next_noise (at s'), policy_noise (at s), bc_noise, bc_time.
    def critic_loss(self, batch: ChunkBatch, draws: Draws) -> tuple[torch.Tensor, dict]:
        hp = self.hparams
        with torch.no_grad():
            next_x = self.ema_policy.sample(batch.next_observations, draws.next_noise)
            next_q = critic_at(self.target_critic, batch.next_observations, next_x, 1.0).mean(dim=0)
            y = losses.td_target(batch, next_q, hp.discount)
        q = critic_at(self.critic, batch.observations, batch.action_chunks, 1.0)  # (K, B)
        return losses.expectile_loss(y - q, hp.expectile, batch.valid), {"q": q.detach()}

    def actor_loss(self, batch: ChunkBatch, draws: Draws) -> tuple[torch.Tensor, dict]:
        hp = self.hparams
        obs, chunk = batch.observations, batch.action_chunks
        with torch.no_grad():  # the weights: no gradient reaches the critic
            baseline = critic_at(self.critic, obs, self.ema_policy.sample(obs, draws.policy_noise), 1.0).mean(dim=0)
            adv = critic_at(self.critic, obs, chunk, 1.0).mean(dim=0) - baseline
            weight = torch.exp(hp.beta * adv).clamp(max=hp.max_weight)
        loss = losses.flow_matching_loss(self.policy, batch, draws, weight=weight).loss
        return loss, {"weighted_bc_loss": loss.detach(), "weight_mean": weight.mean()}

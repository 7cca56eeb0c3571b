"""Flow behaviour cloning: the flow-matching term of RQL's actor loss, and nothing else.

The critic is not trained. Its loss is a constant zero and its parameters are left out of the
optimizer, so a BC run spends no time on a critic whose numbers would mean nothing for the
policy (a TD critic of the behaviour policy would only be a diagnostic). The networks still
exist, so checkpoints have the same keys as every :class:`FlowQModule` (``policy``,
``ema_policy``, ``critic``, ``target_critic``); ``conf/model/bc.yaml`` makes the unused critic
tiny. The target critic's Polyak update is then a no-op up to rounding. The evaluation policy is
the base class's: the EMA flow from the given noise. Draws are the base class's ``RQLDraws``; only ``bc_noise``
and ``bc_time`` are read.
"""

from __future__ import annotations

import torch

from rql_lightning.batch import ChunkBatch
from rql_lightning.losses import RQLDraws
from rql_lightning.modules.base import FlowQModule


class FlowBCModule(FlowQModule):
    """Flow-matching BC on dataset chunks, masked past episode ends (``losses.actor_loss``'s BC term)."""

    def critic_loss(self, batch: ChunkBatch, draws: RQLDraws) -> tuple[torch.Tensor, dict]:
        return batch.observations.new_zeros(()), {}

    def actor_loss(self, batch: ChunkBatch, draws: RQLDraws) -> tuple[torch.Tensor, dict]:
        obs, chunk, t, x0 = batch.observations, batch.action_chunks, draws.bc_time, draws.bc_noise
        x_t = (1.0 - t) * x0 + t * chunk
        pred = self.policy.velocity(obs, x_t, t)
        bc = (batch.action_mask * (pred - (chunk - x0)).square()).mean()
        return bc, {"bc_loss": bc.detach()}

    def configure_optimizers(self) -> torch.optim.Optimizer:
        groups = [{"params": list(self.policy.parameters()), "lr": self.hparams.actor_lr}]
        return torch.optim.Adam(groups, eps=1e-8, fused=True)

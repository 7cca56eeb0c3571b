"""Flow behaviour cloning: the flow-matching term of RQL's actor loss, and nothing else.

The critic is not trained. Its loss is a constant zero and its parameters are left out of the
optimizer, so a BC run spends no time on a critic whose numbers would mean nothing for the
policy (a TD critic of the behaviour policy would only be a diagnostic). The networks still
exist, so checkpoints have the same keys as every :class:`FlowQModule` (``policy``,
``ema_policy``, ``critic``, ``target_critic``); ``conf/model/bc.yaml`` makes the unused critic
tiny. The target critic's Polyak update is then a no-op up to rounding. The evaluation policy is
the base class's: the EMA flow from the given noise. Of the update's :class:`Draws`, only
``bc_noise`` and ``bc_time`` are read.
"""

from __future__ import annotations

import torch

from rql_lightning import losses
from rql_lightning.batch import ChunkBatch, Draws
from rql_lightning.modules.base import FlowQModule


class FlowBCModule(FlowQModule):
    """Flow-matching BC on dataset chunks, masked past episode ends (:func:`losses.flow_matching_loss`)."""

    default_name = "bc"

    def critic_loss(self, batch: ChunkBatch, draws: Draws) -> tuple[torch.Tensor, dict]:
        return batch.observations.new_zeros(()), {}

    def actor_loss(self, batch: ChunkBatch, draws: Draws) -> tuple[torch.Tensor, dict]:
        bc = losses.flow_matching_loss(self.policy, batch, draws).loss
        return bc, {"bc_loss": bc.detach()}

    def optimizer_groups(self) -> list[dict]:
        return super().optimizer_groups()[:1]  # the actor's: the critic is not trained

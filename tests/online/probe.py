"""A test callback that counts, per batch, the windows that start on an online transition."""

from __future__ import annotations

import json
from pathlib import Path

import lightning as L


class OnlineWindowProbe(L.Callback):
    """Writes ``{"batches": n, "with_online": k, "online_windows": w}`` to ``path`` at train end."""

    def __init__(self, path: str) -> None:
        self.path = Path(path)
        self.batches = self.with_online = self.online_windows = 0

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        buffer = trainer.datamodule.train_sampler
        self.batches += 1
        online = buffer.field("observations")[buffer.offline_rows :]
        if online.shape[0] == 0:
            return
        match = (batch.observations[:, None, :] == online[None]).all(dim=-1).any(dim=1)  # (B,)
        hits = int(match.sum())
        self.online_windows += hits
        self.with_online += int(hits > 0)

    def on_train_end(self, trainer, pl_module) -> None:
        record = {"batches": self.batches, "with_online": self.with_online, "online_windows": self.online_windows}
        self.path.write_text(json.dumps(record))

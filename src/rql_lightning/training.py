"""One training run from a composed config: datamodule -> module -> Trainer, and where things went.

config -> datamodule (data/) -> module (modules/) -> Trainer with callbacks (eval,
checkpoints) and loggers. Everything is built with ``hydra.utils.instantiate`` from the
``_target_`` of its config group, so any piece can be swapped from the command line.
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

from omegaconf import DictConfig

from rql_lightning.checks import check_checkpoint, check_config, check_output_dir, latest_checkpoint
from rql_lightning.errors import UserError

if TYPE_CHECKING:
    import lightning as L

log = logging.getLogger("rql_lightning")
PAPER_BATCH_SIZE = 256


def train(cfg: DictConfig) -> dict[str, Any]:
    """Run one training job from a composed config; returns a summary of where things went."""
    check_config(cfg)
    check_output_dir(cfg.paths.output_dir)
    ckpt_path = cfg.get("ckpt_path")
    if ckpt_path is None and cfg.get("resume") == "auto":
        ckpt_path = latest_checkpoint(cfg.paths.output_dir)
        log.info("resume=auto: %s", f"resuming from {ckpt_path}" if ckpt_path else "no checkpoint yet, starting fresh")
    if ckpt_path is not None and not Path(ckpt_path).expanduser().exists():
        raise UserError(f"ckpt_path={ckpt_path} does not exist; point it at a .ckpt (e.g. <run>/checkpoints/last.ckpt)")
    # Imported here, not at module level, so that a bad command line is reported in a second
    # instead of after torch and Lightning have loaded.
    import lightning as L
    from hydra.utils import instantiate

    # Our checkpoints are taken after the whole update, which is the state a resume needs.
    warnings.filterwarnings("ignore", message=".*no pre-optimization state was saved.*")
    L.seed_everything(cfg.seed, workers=True)
    if cfg.get("tf32"):
        import torch

        torch.set_float32_matmul_precision("high")
    # Plain containers, not OmegaConf ones: hyperparameters are pickled into checkpoints, and Lightning
    # resumes with torch.load(weights_only=True), which refuses ListConfig/DictConfig.
    datamodule = instantiate(cfg.data, _convert_="all")
    datamodule.prepare_data()
    datamodule.setup("fit")
    model = instantiate(cfg.model, obs_dim=datamodule.obs_dim, action_dim=datamodule.action_dim, _convert_="all")
    if ckpt_path is not None:
        signature = {k: model.hparams[k] for k in ("obs_dim", "action_dim", "chunk_size") if k in model.hparams}
        check_checkpoint(ckpt_path, signature)
    callbacks = [instantiate(c) for c in (cfg.get("callbacks") or {}).values() if c is not None]
    trainer: L.Trainer = instantiate(cfg.trainer, callbacks=callbacks, logger=make_loggers(cfg) or False)
    log_batch_semantics(trainer.world_size, datamodule)
    trainer.fit(model, datamodule=datamodule, ckpt_path=str(Path(ckpt_path).expanduser()) if ckpt_path else None)
    return summarize(trainer, cfg)


def make_loggers(cfg: DictConfig) -> list:
    """Every logger of the ``logger`` group (``logger=many`` holds several), in config order."""
    from hydra.utils import instantiate

    return [instantiate(c) for c in (cfg.get("logger") or {}).values() if c is not None and "_target_" in c]


def log_batch_semantics(world_size: int, datamodule: Any) -> None:
    """Say at start what a batch means across ranks: per rank (Lightning's convention) or split."""
    from lightning.pytorch.utilities import rank_zero_info

    if world_size <= 1 or not hasattr(datamodule, "per_rank_batch_size"):
        return
    per_rank = datamodule.per_rank_batch_size(world_size)
    how = (
        "data.global_batch_size split across ranks"
        if getattr(datamodule, "global_batch_size", None)
        else "data.batch_size per rank; data.global_batch_size=256 splits the paper's batch instead"
    )
    rank_zero_info(
        f"{world_size} ranks x {per_rank} = global batch {world_size * per_rank}; "
        f"the paper's is {PAPER_BATCH_SIZE} ({how})"
    )


def summarize(trainer: L.Trainer, cfg: DictConfig) -> dict[str, Any]:
    from lightning.pytorch.callbacks import ModelCheckpoint

    from rql_lightning.callbacks.evaluation import EvaluationCallback

    summary: dict[str, Any] = {"task": cfg.task.name, "task_id": cfg.task.id, "seed": cfg.seed}
    summary["step"] = trainer.global_step
    for cb in trainer.callbacks:
        if isinstance(cb, EvaluationCallback) and cb.last_result is not None:
            summary["success_rate"] = cb.last_result.success_rate
            summary["return"] = cb.last_result.mean_return
        if isinstance(cb, ModelCheckpoint):
            summary["checkpoint"] = cb.last_model_path or cb.best_model_path
    if trainer.logger is not None and getattr(trainer.logger, "log_dir", None):
        summary["tensorboard"] = trainer.logger.log_dir
    return summary

"""``rql-train``: the Hydra entry point that composes a run and hands it to Lightning.

config -> datamodule (data/) -> module (modules/) -> Trainer with callbacks (eval,
checkpoints) and loggers. Everything is built with ``hydra.utils.instantiate`` from the
``_target_`` of its config group, so any piece can be swapped from the command line.
"""

from __future__ import annotations

import logging
import sys
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

import hydra  # noqa: E402
from omegaconf import DictConfig  # noqa: E402

from rql_lightning.checks import (  # noqa: E402
    check_checkpoint,
    check_config,
    check_output_dir,
    check_run_dir_arguments,
    latest_checkpoint,
)
from rql_lightning.data.ogbench import DatasetNotFoundError  # noqa: E402
from rql_lightning.data.validate import DatasetError  # noqa: E402
from rql_lightning.errors import NonFiniteError, UserError  # noqa: E402

if TYPE_CHECKING:
    import lightning as L

CONF_DIR = str(Path(__file__).resolve().parents[2] / "conf")
log = logging.getLogger("rql_lightning")


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
    # Noise a newcomer cannot act on: OGBench's float64 space bounds, GLFW without a display (MuJoCo
    # falls back to offscreen rendering), and a Lightning-internal deprecation.
    warnings.filterwarnings("ignore", message=".*precision lowered by casting to float32.*")
    warnings.filterwarnings("ignore", message=".*DISPLAY environment variable is missing.*")
    warnings.filterwarnings("ignore", message=".*isinstance\\(treespec, LeafSpec\\)` is deprecated.*")
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
    logger = instantiate(cfg.logger) if cfg.get("logger") else False
    trainer: L.Trainer = instantiate(cfg.trainer, callbacks=callbacks, logger=logger)
    trainer.fit(model, datamodule=datamodule, ckpt_path=str(Path(ckpt_path).expanduser()) if ckpt_path else None)
    return summarize(trainer, cfg)


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


def print_summary(summary: dict[str, Any]) -> None:
    lines = [
        f"Finished {summary['task']} task {summary['task_id']} (seed {summary['seed']}) at step {summary['step']}."
    ]
    if "success_rate" in summary:
        lines.append(f"  success rate: {summary['success_rate']:.2f}   return: {summary['return']:.1f}")
    if summary.get("checkpoint"):
        lines.append(f"  checkpoint:   {summary['checkpoint']}")
    if summary.get("tensorboard"):
        lines.append(f"  TensorBoard:  tensorboard --logdir {summary['tensorboard']}")
    print("\n".join(lines), flush=True)


@hydra.main(version_base="1.3", config_path=CONF_DIR, config_name="train")
def _hydra_main(cfg: DictConfig) -> float | None:
    try:
        summary = train(cfg)
    except (UserError, DatasetNotFoundError, NonFiniteError, DatasetError) as err:
        print(f"error: {err}", file=sys.stderr, flush=True)
        raise SystemExit(2) from None
    print_summary(summary)
    return summary.get("success_rate")


def train_main() -> None:
    """Console script ``rql-train``.

    Hydra reports a bad command line or config (unknown group option, key not in the config,
    unparsable override) as a short message and exits 1, the same code as a crash; we exit 2
    for those, like our own usage errors.
    """
    from hydra.errors import CompactHydraException, InstantiationException

    try:
        check_run_dir_arguments(sys.argv[1:])
    except UserError as err:
        print(f"error: {err}", file=sys.stderr, flush=True)
        raise SystemExit(2) from None
    try:
        _hydra_main()
    except SystemExit as exit_:
        cause = exit_.__context__  # the exception Hydra reported before calling sys.exit(1)
        if (
            exit_.code == 1
            and isinstance(cause, CompactHydraException)
            and not isinstance(cause, InstantiationException)
        ):
            raise SystemExit(2) from None
        raise


def compose_config(overrides: list[str] | None = None, config_name: str = "train") -> DictConfig:
    """The config ``rql-train`` would run with these overrides (for tests and notebooks).

    ``hydra:`` interpolations are not available outside a Hydra run, so ``paths.output_dir``
    must be given among the overrides.
    """
    from hydra import compose, initialize_config_dir

    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        cfg = compose(config_name=config_name, overrides=overrides or [], return_hydra_config=False)
    return cfg


if __name__ == "__main__":
    train_main()

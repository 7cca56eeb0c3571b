"""``rql-eval``: evaluate a checkpoint without training (:mod:`rql_lightning.checkpoint_eval`)."""

from __future__ import annotations

import sys
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from rql_lightning.cli.common import fail, silence_unactionable_warnings, user_errors_as_one_line
from rql_lightning.config import CONF_DIR

USAGE = "rql-eval ckpt_path=<run>/checkpoints/last.ckpt [eval.episodes=50] [eval.video_episodes=2]"


@hydra.main(version_base="1.3", config_path=CONF_DIR, config_name="eval")
def _hydra_main(cfg: DictConfig) -> float:
    silence_unactionable_warnings()
    from rql_lightning.checkpoint_eval import evaluate_checkpoint

    record = user_errors_as_one_line(
        lambda: evaluate_checkpoint(
            cfg.ckpt_path,
            HydraConfig.get().runtime.output_dir,
            env_name=cfg.env_name,
            seed=cfg.seed,
            device=cfg.device,
            model_class=cfg.get("model_class"),
            replica=cfg.get("replica"),
            **cfg.eval,  # episodes, num_envs, video_episodes, video_frame_skip, video_width, video_height
        )
    )
    print(
        f"Evaluated {record['env']} at step {record['step']} "
        f"over {record['episodes']} episodes (seed {record['seed']}).\n"
        + "".join(
            f"  {key}: success rate {r['success_rate']:.2f}   return {r['return']:.1f}\n"
            for key, r in record.get("replicas", {}).items()
        )
        + f"  success rate: {record['success_rate']:.2f}   return: {record['return']:.1f}\n"
        f"  eval.json:    {Path(record['output_dir']) / 'eval.json'}\n"
        f"  TensorBoard:  tensorboard --logdir {Path(record['output_dir']) / 'tensorboard'}",
        flush=True,
    )
    return record["success_rate"]


def main() -> None:
    """Console script ``rql-eval``. The checkpoint is checked before Hydra starts (its run dir names the output)."""
    ckpt = [a.split("=", 1)[1] for a in sys.argv[1:] if a.startswith(("ckpt_path=", "+ckpt_path="))]
    if not ckpt or not ckpt[-1]:
        fail(f"ckpt_path is required; usage: {USAGE}")
    from rql_lightning.checkpoint_eval import run_dir_of
    from rql_lightning.checks import read_checkpoint

    user_errors_as_one_line(lambda: read_checkpoint(ckpt[-1]))
    if not OmegaConf.has_resolver("rql_run_dir"):
        OmegaConf.register_new_resolver("rql_run_dir", lambda path: str(run_dir_of(path)))
    _hydra_main()


if __name__ == "__main__":
    main()

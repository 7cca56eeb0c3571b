"""``rql-eval``: evaluate a saved checkpoint without training. The class, env and seed come from the run that wrote it
(``.hydra/config.yaml``, then ``summary.json``; an exported replica's batched run), so the episodes, their env
settings and policy noise are those of the run's own evaluations."""

from __future__ import annotations

import inspect
import json
import sys
import time
from contextlib import suppress
from importlib.metadata import version
from pathlib import Path
from typing import Any

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.utils import get_class, instantiate
from omegaconf import DictConfig, OmegaConf

from rql_lightning.checks import EXPORTED_FROM, MODULE_CLASS_KEY, read_checkpoint
from rql_lightning.cli.common import fail, user_errors_as_one_line
from rql_lightning.config import CONF_DIR
from rql_lightning.errors import UserError, silence_unactionable_warnings
from rql_lightning.naming import run_dir_of

USAGE = "rql-eval ckpt_path=<run>/checkpoints/last.ckpt [eval.episodes=50] [eval.video_episodes=2]"


def evaluate_checkpoint(
    ckpt_path: str,
    output_dir: str | Path,
    episodes: int = 50,
    num_envs: int = 2,
    video_episodes: int = 0,
    env_name: str | None = None,
    seed: int | None = None,
    device: str = "auto",
    model_class: str | None = None,
    video_frame_skip: int = 3,
    video_width: int = 128,
    video_height: int = 128,
    replica: str | None = None,
) -> dict[str, Any]:
    """Evaluate a checkpoint into ``output_dir`` (``eval.json``, TensorBoard): every replica of a batched one with
    its own run's episodes and noise (their mean, and each under ``replicas``), or only ``replica`` (``seed3``)."""
    import torch
    from lightning.pytorch.loggers import TensorBoardLogger

    from rql_lightning.callbacks.evaluation import log_video
    from rql_lightning.callbacks.summary import load_hydra_config
    from rql_lightning.envs import success_timing_of
    from rql_lightning.evaluator import evaluate, metric_key, replicas_of, task_env_name

    ckpt = read_checkpoint(ckpt_path)
    origin = ckpt.get(EXPORTED_FROM)  # an exported replica: its batched run holds the config and the summary
    run_dir = Path(origin["run_dir"]) if origin else run_dir_of(ckpt_path)
    run_cfg, summary = load_hydra_config(run_dir) or {}, {}
    with suppress(OSError, ValueError):
        summary = json.loads((run_dir / "summary.json").read_text())
    summary = summary if isinstance(summary, dict) else {}
    # the class that wrote it: the one given, the run's model._target_, its summary's, else the checkpoint's
    target = model_class or (run_cfg.get("model") or {}).get("_target_") or summary.get("model_class")
    target = target or ckpt.get(MODULE_CLASS_KEY)
    if not target:
        raise UserError(
            f"ckpt_path={ckpt_path}: cannot tell which model wrote it (no .hydra/config.yaml or summary.json in "
            f"{run_dir}); pass the module class, e.g. model_class=rql_lightning.modules.rql.RQLModule"
        )
    try:
        cls = get_class(target)
    except (ImportError, ValueError):
        raise UserError(f"ckpt_path={ckpt_path} was written by {target}, which cannot be imported here") from None
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    module = cls.load_from_checkpoint(str(Path(ckpt_path).expanduser()), map_location=device, weights_only=False)
    step = int(ckpt["global_step"])
    del ckpt  # memory-mapped: the module holds its own copy
    env = env_name or summary.get("eval_env")
    if not env and run_cfg.get("data"):
        env = getattr(instantiate(run_cfg["data"], _convert_="all"), "eval_env_name", None)
    if not env:
        raise UserError(
            f"ckpt_path={ckpt_path}: the run does not say which env it was evaluated in; pass env_name=<env id>"
        )
    env = str(env)
    task = None
    if replica is not None:  # ``seed<s>`` or ``task<t>/seed<s>``, as the single run it is
        found = {key: (i, t) for i, (key, t, _) in enumerate(replicas_of(module) or [])}
        if replica not in found:
            have = ", ".join(found) or "none: it is a single run; leave replica unset"
            raise UserError(f"replica={replica} is not a replica of ckpt_path={ckpt_path}; its replicas: {have}")
        index, task = found[replica]
        module = module.replica(index)
    elif origin:  # the replica's own task, as if chosen from the batched checkpoint
        task = origin.get("task")
    if task is not None:  # a paper column's replica is evaluated in its own task's env
        env = task_env_name(env, task)
    if seed is None:  # a replica's own seed; a single run's is the run's
        own = replica is not None or origin
        seed = int(module.hparams.get("seed") if own else run_cfg.get("seed", module.hparams.get("seed", 0)))

    timing = success_timing_of(env, (run_cfg.get("eval") or {}).get("success_timing"))  # the run's semantics
    evaluation = (run_cfg.get("callbacks") or {}).get("evaluation") or {}  # the run's env settings (max_episode_steps)
    env_kwargs = {**(evaluation.get("env_kwargs") or {}), "success_timing": timing}
    start = time.monotonic()
    results = evaluate(
        module,
        env,
        num_episodes=episodes,
        num_envs=num_envs,
        seed=seed,
        video_episodes=video_episodes,
        video_frame_skip=video_frame_skip,
        video_width=video_width,
        video_height=video_height,
        env_kwargs=env_kwargs,
    )
    per = {key: r.numbers() for key, r in results.items()}
    record = {"ckpt_path": str(Path(ckpt_path).expanduser().absolute()), "step": step, "env": env, "seed": seed}
    record.update(ogbench_version=version("ogbench"), success_timing=timing)
    if list(per) == [""]:
        record.update(per[""])
    else:  # the replicas' mean, as the summary of a seed-batched run has it, and each replica's own
        record["seed"] = list(module.seeds)
        record.update({k: sum(p[k] for p in per.values()) / len(per) for k in ("success_rate", "return", "length")})
        record["episodes"] = sum(p["episodes"] for p in per.values())
        record["replicas"] = per
    record["wall_time_s"] = round(time.monotonic() - start, 3)
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "eval.json").write_text(json.dumps(record, indent=2) + "\n")
    logger = TensorBoardLogger(str(out), name="tensorboard", version="", default_hp_metric=False)
    for key, numbers in per.items():  # eval/* of a single run, <replica>/eval/* of each replica
        logger.log_metrics({metric_key(key, f"eval/{k}"): float(v) for k, v in numbers.items()}, step=step)
        log_video([logger], metric_key(key, "eval/video"), results[key].videos, step, fps=15.0)
    logger.finalize("success")
    record["output_dir"] = str(out)
    return record


@hydra.main(version_base="1.3", config_path=CONF_DIR, config_name="eval")
def _hydra_main(cfg: DictConfig) -> float:
    silence_unactionable_warnings()
    args = OmegaConf.to_container(cfg, resolve=True)  # ckpt_path, env_name, seed, device, model_class, replica, eval
    args.update(args.pop("eval"))
    unknown = sorted(set(args) - set(inspect.signature(evaluate_checkpoint).parameters))
    if unknown:  # a key added with +key=...: refused, not ignored
        fail(f"{', '.join(unknown)}: not a setting of rql-eval (conf/eval.yaml has them all); usage: {USAGE}")
    out = HydraConfig.get().runtime.output_dir
    record = user_errors_as_one_line(lambda: evaluate_checkpoint(output_dir=out, **args))
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
    user_errors_as_one_line(lambda: read_checkpoint(ckpt[-1]))
    OmegaConf.register_new_resolver("rql_run_dir", lambda path: str(run_dir_of(path)), replace=True)
    _hydra_main()


if __name__ == "__main__":
    main()

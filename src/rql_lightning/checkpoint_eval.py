"""Evaluate a saved checkpoint without training: the library side of ``rql-eval``.

The module is rebuilt by Lightning from the checkpoint's own hyperparameters; the class, the
evaluation env and the seed come from the run that wrote it (``<run>/.hydra/config.yaml``, then
``<run>/summary.json``), so the episodes and policy noise are those of the run's own evaluations. A replica
exported from a batched run (modules/seed_export.py) names that run in its checkpoint, which is read instead of
the exported file's folder.
"""

from __future__ import annotations

import importlib
import json
import time
from pathlib import Path
from typing import Any

from rql_lightning.callbacks.run_info import load_hydra_config
from rql_lightning.checkpoint_fit import EXPORTED_FROM, MODULE_CLASS_KEY
from rql_lightning.checks import read_checkpoint
from rql_lightning.errors import UserError

EVAL_FILENAME = "eval.json"


def run_dir_of(ckpt_path: str | Path) -> Path:
    """``<run>/checkpoints/x.ckpt`` -> ``<run>``; a checkpoint elsewhere -> its own folder."""
    path = Path(ckpt_path).expanduser().absolute()
    return path.parent.parent if path.parent.name == "checkpoints" else path.parent


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def module_class(run_cfg: dict | None, summary: dict | None, ckpt_path: str, saved: str | None = None) -> type:
    """The class that wrote the checkpoint: the run's ``model._target_``, its summary's, else the one the
    checkpoint itself names (``saved``)."""
    target = (run_cfg or {}).get("model", {}).get("_target_") or (summary or {}).get("model_class") or saved
    if not target:
        raise UserError(
            f"ckpt_path={ckpt_path}: cannot tell which model wrote it (no .hydra/config.yaml or summary.json in "
            f"{run_dir_of(ckpt_path)}); pass the module class, e.g. model_class=rql_lightning.modules.rql.RQLModule"
        )
    module_name, _, cls_name = target.rpartition(".")
    try:
        return getattr(importlib.import_module(module_name), cls_name)
    except (ImportError, AttributeError):
        raise UserError(f"ckpt_path={ckpt_path} was written by {target}, which cannot be imported here") from None


def eval_env_of(run_cfg: dict | None, summary: dict | None, ckpt_path: str) -> str:
    if summary and summary.get("eval_env"):
        return str(summary["eval_env"])
    if run_cfg and run_cfg.get("data"):
        from hydra.utils import instantiate

        datamodule = instantiate(run_cfg["data"], _convert_="all")
        if getattr(datamodule, "eval_env_name", None):
            return str(datamodule.eval_env_name)
    raise UserError(
        f"ckpt_path={ckpt_path}: the run does not say which env it was evaluated in; pass env_name=<env id>"
    )


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
    video_size: tuple[int, int] = (128, 128),
    replica: str | None = None,
) -> dict[str, Any]:
    """Run the evaluation protocol on a checkpoint; writes ``eval.json`` and TensorBoard events to ``output_dir``.

    A checkpoint of several replicas (``seeds=[...]``) evaluates every replica with its own run's episodes and
    noise (``eval.json``: their mean, and each under ``replicas``), or only ``replica`` (a key such as ``seed3``)."""
    import torch

    ckpt = read_checkpoint(ckpt_path)
    origin = ckpt.get(EXPORTED_FROM)  # an exported replica: its batched run holds the config and the summary
    run_dir = Path(origin["run_dir"]) if origin else run_dir_of(ckpt_path)
    run_cfg = load_hydra_config(run_dir)
    summary = _read_json(run_dir / "summary.json")
    if model_class:
        run_cfg = {**(run_cfg or {}), "model": {"_target_": model_class}}
    cls = module_class(run_cfg, summary, ckpt_path, ckpt.get(MODULE_CLASS_KEY))
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    module = cls.load_from_checkpoint(str(Path(ckpt_path).expanduser()), map_location=device, weights_only=False)
    step = int(ckpt["global_step"])
    del ckpt  # memory-mapped: the module holds its own copy
    env = env_name or eval_env_of(run_cfg, summary, ckpt_path)
    task = None
    if replica is not None:
        module, task = one_replica(module, replica, ckpt_path)
    elif origin:  # the replica's own task, as if chosen from the batched checkpoint
        task = origin.get("task")
    if task is not None:  # a paper column's replica is evaluated in its own task's env
        from rql_lightning.evaluator import task_env_name

        env = task_env_name(env, task)
    if seed is None:  # a replica's own seed; a single run's is the run's
        seed = int(
            module.hparams.get("seed")
            if replica is not None or origin
            else (run_cfg or {}).get("seed", module.hparams.get("seed", 0))
        )

    from rql_lightning.envs.make import ogbench_version, success_timing_of
    from rql_lightning.evaluator import evaluate

    timing = success_timing_of(env, ((run_cfg or {}).get("eval") or {}).get("success_timing"))  # the run's semantics
    start = time.monotonic()
    results = evaluate(
        module,
        env,
        num_episodes=episodes,
        num_envs=num_envs,
        seed=seed,
        video_episodes=video_episodes,
        frame_skip=video_frame_skip,
        width=video_size[0],
        height=video_size[1],
        env_kwargs={"success_timing": timing},
    )
    per = {
        key: {
            "episodes": r.num_episodes,
            "success_rate": r.success_rate,
            "return": r.mean_return,
            "length": r.mean_length,
        }
        for key, r in results.items()
    }
    record = {"ckpt_path": str(Path(ckpt_path).expanduser().absolute()), "step": step, "env": env, "seed": seed}
    record.update(ogbench_version=ogbench_version(), success_timing=timing)
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
    (out / EVAL_FILENAME).write_text(json.dumps(record, indent=2) + "\n")
    _log_to_tensorboard(out, step, per, results)
    record["output_dir"] = str(out)
    return record


def one_replica(module: Any, key: str, ckpt_path: str) -> tuple[Any, int | None]:
    """Replica ``key`` (``seed<s>``, or ``task<t>/seed<s>`` in a paper column) of a several-replica module, as the
    single run it is, and its task (None without tasks)."""
    keys = list(getattr(module, "replica_names", None) or [])
    if key not in keys:
        have = ", ".join(keys) or "none: it is a single run; leave replica unset"
        raise UserError(f"replica={key} is not a replica of ckpt_path={ckpt_path}; its replicas: {have}")
    index = keys.index(key)
    tasks = getattr(module, "task_ids", None)
    return module.replica(index), None if tasks is None else int(tasks[index])


def _log_to_tensorboard(out: Path, step: int, per: dict[str, dict[str, Any]], results: dict[str, Any]) -> None:
    """``eval/*`` of a single run, ``<replica>/eval/*`` of each replica, at the checkpoint's step."""
    from lightning.pytorch.loggers import TensorBoardLogger

    from rql_lightning.callbacks.video import log_video
    from rql_lightning.evaluator import metric_key

    logger = TensorBoardLogger(str(out), name="tensorboard", version="", default_hp_metric=False)
    for key, numbers in per.items():
        logger.log_metrics({metric_key(key, f"eval/{k}"): float(v) for k, v in numbers.items()}, step=step)
        log_video([logger], metric_key(key, "eval/video"), results[key].videos, step, fps=15.0)
    logger.finalize("success")

"""One training run from a composed config: datamodule -> module -> Trainer with callbacks and loggers, each built by
``hydra.utils.instantiate`` from its group's ``_target_`` (so any piece can be swapped from the command line)."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hydra.utils import instantiate
from omegaconf import DictConfig

from rql_lightning.checks import check_config, check_machine, check_output_dir, read_checkpoint
from rql_lightning.errors import UserError
from rql_lightning.naming import class_path
from rql_lightning.run_lock import hold_run_dir

if TYPE_CHECKING:
    import lightning as L


def train(cfg: DictConfig, config_checked: bool = False, machine_checked: bool = False) -> dict[str, Any]:
    """Run one training job from a composed config; a summary of where things went. ``config_checked``: the caller
    ran :func:`~rql_lightning.checks.check_config` (``rql-train`` checks a sweep's jobs before launching any);
    ``machine_checked``: it ran :func:`~rql_lightning.checks.check_machine` in this process (a single run's)."""
    if not config_checked:
        check_config(cfg)
    if not machine_checked:
        check_machine(cfg)
    check_output_dir(cfg.paths.output_dir)
    with hold_run_dir(cfg.paths.output_dir, cfg.get("run_lock")):  # one writer per run dir, before it writes there
        return _fit(cfg)


def _fit(cfg: DictConfig) -> dict[str, Any]:
    ckpt_path = cfg.get("ckpt_path")
    if ckpt_path is None and cfg.get("resume") == "auto":
        ckpt_path = "last"  # Lightning's: the run's newest last.ckpt if there is one, else a fresh start
    explicit = ckpt_path not in (None, "last")
    if explicit and not Path(ckpt_path).expanduser().exists():
        raise UserError(f"ckpt_path={ckpt_path} does not exist; point it at a .ckpt (e.g. <run>/checkpoints/last.ckpt)")
    # Imported here, so that a bad command line is reported before torch and Lightning have loaded.
    import lightning as L
    import torch
    from lightning.pytorch.utilities import rank_zero_info

    from rql_lightning.online.phase import online_phase

    # Our checkpoints are taken after the whole update, which is the state a resume needs.
    warnings.filterwarnings("ignore", message=".*no pre-optimization state was saved.*")
    L.seed_everything(cfg.seed, workers=True)
    if cfg.get("tf32"):
        torch.set_float32_matmul_precision("high")
    # Plain containers, not OmegaConf ones: hyperparameters are pickled into checkpoints, and Lightning
    # resumes with torch.load(weights_only=True), which refuses ListConfig/DictConfig.
    datamodule = instantiate(cfg.data, _convert_="all")
    obs_dim, action_dim = datamodule.dims()  # from the env's or the file's spaces: nothing loaded yet
    check_env_spaces(cfg, datamodule, obs_dim, action_dim)
    seeds = [int(s) for s in cfg.seeds] if cfg.get("seeds") else None
    replicas = {"seeds": seeds} if seeds else {}
    if cfg.task.get("ids") is not None:  # a replica per (task, seed), task-major, as the datamodule orders batches
        runs = [(int(t), s) for t in cfg.task.ids for s in seeds or [int(cfg.seed)]]
        replicas = {"seeds": [s for _, s in runs], "task_ids": [t for t, _ in runs]}
    model = instantiate(cfg.model, obs_dim=obs_dim, action_dim=action_dim, **replicas, _convert_="all")
    datamodule.seeds = seeds  # its task_ids: data.task_ids
    if explicit:  # checked now, before data is loaded; "last" is checked by the module as Lightning loads it
        read_checkpoint(ckpt_path, dict(model.hparams), class_path(type(model)))
        ckpt_path = str(Path(ckpt_path).expanduser())
    callbacks = make_callbacks(cfg)
    online = online_phase(cfg)  # None unless online.steps > 0: then trainer.max_steps + steps x utd updates
    if online is not None:
        callbacks.insert(0, online)  # first, so its final numbers are published before the summary reads them
    trainer = make_trainer(cfg, callbacks, **({"max_steps": online.total_steps} if online else {}))
    ranks = trainer.world_size
    if ranks > 1 and hasattr(datamodule, "per_rank_batch_size"):  # say what a batch means across ranks
        per_rank = datamodule.per_rank_batch_size(ranks)
        how = (
            "data.global_batch_size split across ranks"
            if getattr(datamodule, "global_batch_size", None)
            else "data.batch_size per rank; data.global_batch_size=256 splits the paper's batch instead"
        )
        rank_zero_info(f"{ranks} ranks x {per_rank} = global batch {ranks * per_rank}; the paper's is 256 ({how})")
    trainer.fit(model, datamodule=datamodule, ckpt_path=ckpt_path)
    return summarize(trainer, cfg)


def check_env_spaces(cfg: DictConfig, datamodule: Any, obs_dim: int, action_dim: int) -> None:
    """Before step 0: the evaluation env and the online phase's (which may name another env than the data's) observe
    and act in the data's dims; the env the dims were read from (``dims_env_name``) is not built again."""
    from rql_lightning.envs import make_eval_env

    own = getattr(datamodule, "eval_env_name", None)
    envs = {}  # role -> (the key that names the env, the env)
    evaluation = (cfg.get("callbacks") or {}).get("evaluation")
    if evaluation is not None and cfg.get("eval", {}).get("episodes", 1) != 0:
        envs["evaluation"] = ("callbacks.evaluation.env_name", evaluation.get("env_name") or own)
    online = cfg.get("online") or {}
    if online.get("steps", 0):
        envs["online"] = ("online.env_name", online.get("env_name") or own)
    checked = {None, getattr(datamodule, "dims_env_name", None)}  # None: no env, the evaluation callback says so
    for role, (key, name) in envs.items():
        if name in checked:
            continue
        checked.add(name)
        with make_eval_env(name) as env:
            obs_shape, action_shape = tuple(env.observation_space.shape or ()), tuple(env.action_space.shape or ())
        if (obs_shape, action_shape) != ((obs_dim,), (action_dim,)):
            raise UserError(
                f"the {role} env {name} has observations of shape {obs_shape} and actions of shape {action_shape}, "
                f"but {datamodule.describe_source()} holds ({obs_dim},) and ({action_dim},); use the data's own env "
                f"({key}=null), or train on data of that env"
            )


def make_callbacks(cfg: DictConfig) -> list:
    """The ``callbacks`` group's callbacks; ``eval.episodes=0`` means no evaluation."""
    groups = dict(cfg.get("callbacks") or {})
    if cfg.get("eval", {}).get("episodes", 1) == 0:
        groups.pop("evaluation", None)
    return [instantiate(c) for c in groups.values() if c is not None]


def make_trainer(cfg: DictConfig, callbacks: list, **overrides: Any) -> L.Trainer:
    """The Trainer; a combination Lightning cannot serve (e.g. 16-mixed on CPU) is one line, not a traceback."""
    from hydra.errors import InstantiationException
    from lightning.fabric.utilities.exceptions import MisconfigurationException

    try:
        return instantiate(cfg.trainer, callbacks=callbacks, logger=make_loggers(cfg) or False, **overrides)
    except InstantiationException as err:
        cause = err.__cause__ or err.__context__
        if isinstance(cause, MisconfigurationException | ValueError):
            message = " ".join(str(cause).split())
            raise UserError(f"trainer: {message}; change the trainer.* settings named there") from None
        raise


def make_loggers(cfg: DictConfig) -> list:
    """Every logger of the ``logger`` group (``logger=many`` holds several), in config order."""
    return [instantiate(c) for c in (cfg.get("logger") or {}).values() if c is not None and "_target_" in c]


def summarize(trainer: L.Trainer, cfg: DictConfig) -> dict[str, Any]:
    """Where the run went, and its last ``eval/*`` numbers; a batched run's per replica under ``per_seed`` (seed ->
    numbers) or ``per_task`` (task -> seed -> numbers), their mean as ``success_rate`` / ``return``."""
    from lightning.pytorch.loggers import TensorBoardLogger

    from rql_lightning.evaluator import metric_key, replicas_of

    replicas = replicas_of(trainer.lightning_module) or [("", None, None)]
    seeds = [seed for _, _, seed in replicas if seed is not None]
    summary: dict[str, Any] = {"task": cfg.task.name, "task_id": cfg.task.ids or cfg.task.id}
    summary["seed"] = sorted(set(seeds), key=seeds.index) or cfg.seed
    summary["step"] = trainer.global_step
    numbers: dict[tuple[int | None, int | None], dict[str, float]] = {}
    for key, task, seed in replicas:
        for name in ("success_rate", "return"):
            if (value := trainer.callback_metrics.get(metric_key(key, f"eval/{name}"))) is not None:
                numbers.setdefault((task, seed), {})[name] = float(value)
    if replicas[0][1] is not None:  # task_ids
        summary["seeds"], summary["per_task"] = summary["seed"], {}
        for (task, seed), values in numbers.items():
            summary["per_task"].setdefault(task, {})[seed] = values
    elif seeds:
        summary["seeds"], summary["per_seed"] = seeds, {seed: values for (_, seed), values in numbers.items()}
    if len(numbers) == len(replicas):
        for name in ("success_rate", "return"):
            summary[name] = sum(v[name] for v in numbers.values()) / len(numbers)
    checkpoint = trainer.checkpoint_callback  # Lightning's accessor of its ModelCheckpoint
    if checkpoint is not None:
        summary["checkpoint"] = checkpoint.last_model_path or checkpoint.best_model_path
    tensorboard = [lg for lg in trainer.loggers if isinstance(lg, TensorBoardLogger)]
    if tensorboard:
        summary["tensorboard"] = tensorboard[0].log_dir
    return summary

"""What a run is, for its records: method name, data identity, configuration, source revision."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

from lightning.pytorch.utilities import rank_zero_warn

from rql_lightning.naming import class_path

__all__ = ["data_identity", "git_state", "load_hydra_config", "method_name", "model_class"]


def method_name(module: Any) -> str:
    """The name tables use: the module's ``method_name`` (``model.name``, else its class's ``default_name``), else
    the class name (a LightningModule of the user's own)."""
    name = getattr(module, "method_name", None)
    if isinstance(name, str) and name:
        return name
    return type(module).__name__


def model_class(module: Any) -> str:
    """The method's import path (with replicas too: one module class holds them all)."""
    return class_path(type(module))


def data_identity(trainer: Any) -> dict[str, Any] | None:
    """What the run trained on: ``trainer.datamodule.identity()`` (source, dataset, path, size_bytes,
    fingerprint, key); None without a datamodule that says. A failure is a warning, never a crash."""
    identity = getattr(getattr(trainer, "datamodule", None), "identity", None)
    if not callable(identity):
        return None
    try:
        return dict(identity())
    except Exception as err:  # noqa: BLE001  (a record must not stop training)
        rank_zero_warn(f"data identity unavailable: {type(err).__name__}: {err}")
        return None


def git_state(path: str | Path | None = None) -> tuple[str | None, bool | None]:
    """``(HEAD commit, has uncommitted changes to tracked files)`` of the checkout holding ``path``; ``(None, None)``
    when git is missing or ``path`` is not inside a checkout."""
    cwd = Path(path) if path is not None else Path(__file__).resolve().parent

    def git(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, timeout=10, check=False)

    try:
        head = git("rev-parse", "HEAD")
        if head.returncode != 0:
            return None, None
        status = git("status", "--porcelain", "--untracked-files=no")
    except (OSError, subprocess.SubprocessError):
        return None, None
    dirty = bool(status.stdout.strip()) if status.returncode == 0 else None
    return head.stdout.strip() or None, dirty


def load_hydra_config(output_dir: Path) -> dict[str, Any] | None:
    """``<output_dir>/.hydra/config.yaml`` as a plain dict, resolved with ``paths.output_dir = output_dir``;
    None when the file does not exist (a run composed without Hydra's job machinery)."""
    path = Path(output_dir) / ".hydra" / "config.yaml"
    if not path.is_file():
        return None
    from omegaconf import OmegaConf

    cfg = OmegaConf.load(path)
    # ``paths.output_dir`` is ``${hydra:runtime.output_dir}``, which only resolves inside a Hydra job.
    if "paths" in cfg and "output_dir" in cfg.paths:
        cfg.paths.output_dir = str(output_dir)
    try:
        return OmegaConf.to_container(cfg, resolve=True)
    except Exception:  # an interpolation that needs Hydra's runtime: keep the config as written
        return OmegaConf.to_container(cfg, resolve=False)

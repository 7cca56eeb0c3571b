"""Where the Hydra configs live, and composing them outside a Hydra run (tests, notebooks, ``rql-eval``).

The configs are the top-level ``conf/`` of the repository. A built wheel ships the same tree as the
package data ``rql_lightning/conf`` (see ``pyproject.toml``), so an installed ``rql-train`` finds them
without a checkout beside it.
"""

from __future__ import annotations

from pathlib import Path

from omegaconf import DictConfig

_PACKAGE = Path(__file__).resolve().parent
_CHECKOUT_CONF = _PACKAGE.parents[1] / "conf"  # src/rql_lightning -> repository root


def conf_dir() -> str:
    """The config tree: the checkout's ``conf/`` (editable installs), else the copy inside the package."""
    shipped = _PACKAGE / "conf"
    if (shipped / "train.yaml").is_file():
        return str(shipped)
    return str(_CHECKOUT_CONF)


CONF_DIR = conf_dir()


def compose_config(overrides: list[str] | None = None, config_name: str = "train") -> DictConfig:
    """The config ``rql-train`` would run with these overrides.

    ``hydra:`` interpolations are not available outside a Hydra run, so ``paths.output_dir``
    must be given among the overrides.
    """
    from hydra import compose, initialize_config_dir

    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        return compose(config_name=config_name, overrides=overrides or [], return_hydra_config=False)

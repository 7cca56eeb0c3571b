"""Where the Hydra configs live, and composing them outside a Hydra run (tests, notebooks, ``rql-eval``).

The configs are the top-level ``conf/`` of the repository, shipped in the wheel as the package data
``rql_lightning/conf`` (``pyproject.toml``), so an installed ``rql-train`` needs no checkout beside it.
"""

from __future__ import annotations

from pathlib import Path

from omegaconf import DictConfig

# src/rql_lightning/conf is a link to the repository's top-level conf/ in a checkout; a built wheel holds
# the files themselves there. Either way the package finds its configs next to itself.
CONF_DIR = str(Path(__file__).resolve().parent / "conf")


def compose_config(
    overrides: list[str] | None = None, config_name: str = "train", with_hydra: bool = False
) -> DictConfig:
    """The config ``rql-train`` would run with these overrides (``with_hydra``: and its ``hydra:`` node).

    ``hydra:`` interpolations are not available outside a Hydra run, so ``paths.output_dir``
    must be given among the overrides.
    """
    from hydra import compose, initialize_config_dir

    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        return compose(config_name=config_name, overrides=overrides or [], return_hydra_config=with_hydra)


CONFIG_TREE_ORDER = ("task", "model", "data", "trainer", "logger", "callbacks", "eval", "paths", "extras")


def print_config_tree(cfg: DictConfig, resolve: bool = True) -> None:
    """Print the composed config as a rich tree, the main groups first (``extras.print_config``)."""
    import rich
    import rich.syntax
    import rich.tree
    from omegaconf import OmegaConf

    tree = rich.tree.Tree("config", style="bold")
    keys = [k for k in CONFIG_TREE_ORDER if k in cfg] + [k for k in cfg if k not in CONFIG_TREE_ORDER]
    for key in keys:
        node = cfg[key]
        text = OmegaConf.to_yaml(node, resolve=resolve) if OmegaConf.is_config(node) else str(node)
        tree.add(str(key), style="bold").add(rich.syntax.Syntax(text.rstrip(), "yaml", theme="ansi_dark"))
    rich.print(tree)

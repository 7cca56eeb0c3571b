"""Where the Hydra configs live (``conf/``: a link in a checkout, package data in a wheel), composing them outside
a Hydra run (tests, notebooks) and printing them."""

from __future__ import annotations

from pathlib import Path

from hydra import compose, initialize_config_dir
from omegaconf import DictConfig, OmegaConf

CONF_DIR = str(Path(__file__).resolve().parent / "conf")


def compose_config(overrides: list[str] | None = None, with_hydra: bool = False) -> DictConfig:
    """The config ``rql-train`` would run (``with_hydra``: with ``hydra:``); give ``paths.output_dir`` among these."""
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        return compose(config_name="train", overrides=overrides or [], return_hydra_config=with_hydra)


CONFIG_TREE_ORDER = ("task", "model", "data", "trainer", "logger", "callbacks", "eval", "paths", "extras")


def print_config_tree(cfg: DictConfig) -> None:
    """Print the composed config as a rich tree, the main groups first (``extras.print_config``)."""
    import rich.syntax
    import rich.tree

    tree = rich.tree.Tree("config", style="bold")
    keys = [k for k in CONFIG_TREE_ORDER if k in cfg] + [k for k in cfg if k not in CONFIG_TREE_ORDER]
    for key in keys:
        node = cfg[key]
        text = OmegaConf.to_yaml(node, resolve=True) if OmegaConf.is_config(node) else str(node)
        tree.add(str(key), style="bold").add(rich.syntax.Syntax(text.rstrip(), "yaml", theme="ansi_dark"))
    rich.print(tree)

"""summary.json names the method and the data a run trained on; the run's hyperparameters and final
numbers reach TensorBoard's HParams view (so a sweep compares there)."""

from __future__ import annotations

import json

import pytest
from omegaconf import OmegaConf
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.plugins.hparams import plugin_data_pb2

from rql_lightning.callbacks.summary import method_name
from rql_lightning.config import compose_config
from rql_lightning.training import train
from tests.runs import TINY

pytestmark = [
    pytest.mark.filterwarnings("ignore:.*precision lowered by casting:UserWarning"),
    pytest.mark.filterwarnings("ignore:.*DISPLAY environment variable is missing"),
]


def _hparams_plugin_data(log_dir) -> tuple[dict[str, plugin_data_pb2.HParamsPluginData], EventAccumulator]:
    """The HParams plugin's summaries by tag (``_hparams_/experiment``, ...), and the loaded events."""
    acc = EventAccumulator(str(log_dir), size_guidance={"scalars": 0, "tensors": 0})
    acc.Reload()
    content = acc.PluginTagToContent("hparams")
    return {tag: plugin_data_pb2.HParamsPluginData.FromString(raw) for tag, raw in content.items()}, acc


@pytest.mark.slow
def test_summary_names_method_and_data_and_hparams_reach_tensorboard(cube_single_dataset, tmp_path):
    overrides = [
        f"data.dataset_path={cube_single_dataset}",
        f"paths.output_dir={tmp_path}",
        "trainer.max_steps=4",
        *TINY,
        "logger=many",  # TensorBoard and CSV: the HParams go to TensorBoard, CSV is left alone
    ]
    cfg = compose_config(overrides)
    (tmp_path / ".hydra").mkdir()
    OmegaConf.save(cfg, tmp_path / ".hydra" / "config.yaml")  # what Hydra writes for an rql-train run
    returned = train(cfg)

    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["model"] == "rql" and summary["model_class"] == "rql_lightning.modules.rql.RQLModule"
    data = summary["data"]
    assert set(data) == {"source", "dataset", "path", "size_bytes", "fingerprint", "key"}
    assert data["path"] == str(cube_single_dataset) and data["size_bytes"] == cube_single_dataset.stat().st_size
    assert data["dataset"] == "cube-single-play-v0" and data["key"].startswith(f"{data['source']}:")
    # the run's return value reads the published eval/* metrics: the same numbers as summary.json
    assert summary["eval_step"] == 4 and returned["success_rate"] == summary["success_rate"]
    assert returned["return"] == summary["return"]

    plugin, acc = _hparams_plugin_data(tmp_path / "tensorboard")
    experiment = plugin["_hparams_/experiment"].experiment
    assert {m.name.tag for m in experiment.metric_infos} == {"final/success_rate", "final/return", "final/step"}
    hparams = plugin["_hparams_/session_start_info"].session_start_info.hparams
    assert hparams["model.alpha"].number_value == cfg.model.alpha  # the flattened config
    assert hparams["data.batch_size"].number_value == 32
    assert hparams["model.actor_hidden_dims"].string_value == "[32, 32]"
    assert hparams["run.method"].string_value == "rql" and hparams["run.data"].string_value == data["key"]
    (final,) = acc.Scalars("final/return")
    assert final.value == pytest.approx(summary["return"])
    assert [e.step for e in acc.Scalars("eval/return")] == [4]  # the final numbers have tags of their own
    assert (tmp_path / "csv" / "metrics.csv").is_file()


def test_method_names_are_short_and_a_subclass_may_set_its_own():
    from rql_lightning.modules.bc import FlowBCModule
    from rql_lightning.modules.rql import RQLModule

    kw = dict(obs_dim=2, action_dim=1, chunk_size=1, actor_hidden_dims=[4], critic_hidden_dims=[4], num_critics=2)
    assert method_name(RQLModule(**kw)) == "rql" and method_name(FlowBCModule(**kw)) == "bc"
    assert method_name(RQLModule(**kw, name="rql-big")) == "rql-big"

    class Mine:  # not a FlowQModule: its class name
        pass

    assert method_name(Mine()) == "Mine"

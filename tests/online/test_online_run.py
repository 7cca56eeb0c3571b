"""Offline then online on real cube-single data in the real OGBench env, and a resume in the online phase."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from rql_lightning.config import compose_config
from rql_lightning.errors import UserError
from rql_lightning.online.phase import SEGMENT_DIR, read_segments
from rql_lightning.training import train
from tests.runs import TINY, scalars

OFFLINE, ONLINE = 30, 250


def overrides(dataset: Path, out: Path, *extra: str) -> list[str]:
    return [
        f"data.dataset_path={dataset}",
        f"paths.output_dir={out}",
        *TINY,
        f"trainer.max_steps={OFFLINE}",
        f"online.steps={ONLINE}",
        "callbacks.checkpoint.every_n_train_steps=100",
        "+callbacks.probe._target_=tests.online.probe.OnlineWindowProbe",
        f"+callbacks.probe.path={out}/probe.json",
        *extra,
    ]


def online_rows(checkpoint: Path) -> dict[str, np.ndarray]:
    state = torch.load(checkpoint, weights_only=False)["online"]
    rows = read_segments(checkpoint.parent / SEGMENT_DIR, state["segments"], state["env_steps"])
    rows["terminals"][state["cuts"]] = 1.0
    return rows


@pytest.fixture(scope="module")
def straight(cube_single_dataset, tmp_path_factory):
    out = tmp_path_factory.mktemp("online") / "straight"
    return out, train(compose_config(overrides(cube_single_dataset, out)))


@pytest.mark.slow
def test_offline_then_online_run_grows_the_buffer_by_exactly_the_online_steps(straight, cube_single_dataset):
    out, summary = straight
    assert summary["step"] == OFFLINE + ONLINE  # utd=1: one update per environment step
    last = torch.load(out / "checkpoints" / "last.ckpt", weights_only=False)
    state = last["online"]
    assert state["env_steps"] == ONLINE and state["offline_steps"] == OFFLINE
    with np.load(cube_single_dataset) as f:
        offline_rows = int(len(f["terminals"]) - f["terminals"].sum())  # each episode's final observation starts none
    assert state["commits"][-1][1] == offline_rows + ONLINE
    rows = online_rows(out / "checkpoints" / "last.ckpt")
    assert len(rows["observations"]) == ONLINE
    # cube-single episodes last 200 steps: one finished (truncated, mask 1), one in progress.
    assert rows["terminals"].sum() == 1 and rows["terminals"][199] == 1 and rows["masks"].min() == 1
    assert np.abs(rows["actions"]).max() <= 1.0


@pytest.mark.slow
def test_windows_include_online_transitions_and_evaluation_goes_on(straight):
    out, summary = straight
    probe = json.loads((out / "probe.json").read_text())
    assert probe["batches"] == OFFLINE + ONLINE
    assert probe["with_online"] > ONLINE // 2 and probe["online_windows"] > ONLINE
    assert 0.0 <= summary["success_rate"] <= 1.0  # the end-of-training evaluation, in its own envs
    series = scalars(out / "tensorboard")
    for key in ("online/episode_return", "online/episode_success", "online/episode_length", "online/buffer_size"):
        assert series.get(key), (key, sorted(series))
    assert series["online/episode_length"][0][1] == 200
    assert series["eval/success_rate"][-1][0] == OFFLINE + ONLINE


@pytest.mark.slow
def test_resume_in_the_online_phase_keeps_every_transition_added_before_the_checkpoint(
    straight, cube_single_dataset, tmp_path
):
    out, _ = straight
    middle = out / "checkpoints" / "step0000100.ckpt"
    kept = online_rows(middle)
    before = len(kept["observations"])
    assert 0 < before < ONLINE
    resumed_out = tmp_path / "resumed"
    summary = train(compose_config(overrides(cube_single_dataset, resumed_out, f"ckpt_path={middle}")))
    assert summary["step"] == OFFLINE + ONLINE
    resumed = online_rows(resumed_out / "checkpoints" / "last.ckpt")
    straight_rows = online_rows(out / "checkpoints" / "last.ckpt")
    assert len(resumed["observations"]) == ONLINE
    for name in ("observations", "actions", "rewards", "masks"):
        assert np.array_equal(resumed[name][:before], straight_rows[name][:before]), name
    # The episode in progress at the checkpoint ends there (its simulator state is not restorable).
    assert np.array_equal(resumed["terminals"][: before - 1], straight_rows["terminals"][: before - 1])
    assert resumed["terminals"][before - 1] == 1


def test_bad_online_settings_are_one_line(cube_single_dataset, tmp_path):
    for bad, key in (("online.steps=-1", "online.steps=-1"), ("online.utd=0", "online.utd=0")):
        with pytest.raises(UserError, match=key):
            train(compose_config([*overrides(cube_single_dataset, tmp_path), bad]))


@pytest.mark.slow
def test_resume_auto_in_the_same_run_directory_continues_the_online_phase(cube_single_dataset, tmp_path):
    out = tmp_path / "run"
    first = train(compose_config(overrides(cube_single_dataset, out, "online.steps=100")))
    assert first["step"] == OFFLINE + 100
    kept = online_rows(out / "checkpoints" / "last.ckpt")
    summary = train(compose_config(overrides(cube_single_dataset, out, "resume=auto", "online.steps=150")))
    assert summary["step"] == OFFLINE + 150
    rows = online_rows(out / "checkpoints" / "last.ckpt")
    assert len(rows["observations"]) == 150
    for name in ("observations", "actions", "rewards", "masks"):
        assert np.array_equal(rows[name][:100], kept[name]), name
    assert rows["terminals"][99] == 1  # the episode in progress at the checkpoint ends there


@pytest.mark.parametrize("model", ["fql", "bc"])
def test_other_methods_explore_through_the_base_class(model, cube_single_dataset, tmp_path):
    extra = (f"model={model}", "trainer.max_steps=5", "online.steps=12", "online.utd=2", "~callbacks.evaluation")
    summary = train(compose_config([*overrides(cube_single_dataset, tmp_path), *extra]))
    assert summary["step"] == 5 + 12 * 2
    state = torch.load(tmp_path / "checkpoints" / "last.ckpt", weights_only=False)["online"]
    assert state["env_steps"] == 12 and state["chunks"] == 3  # chunks of h = 5 actions: 5 + 5 + 2


@pytest.mark.slow
def test_summary_records_offline_and_online_step_counts(straight):
    out, _ = straight
    summary = json.loads((out / "summary.json").read_text())
    assert summary["offline_steps"] == OFFLINE and summary["online_env_steps"] == ONLINE
    assert summary["online_updates"] == ONLINE and summary["step"] == OFFLINE + ONLINE


def test_a_users_method_explores_through_the_base_class(cube_single_dataset, tmp_path, monkeypatch):
    """examples/my_flow_policy.py, a method written against FlowQModule alone, fine-tunes online too."""
    examples = Path(__file__).resolve().parents[2] / "examples"
    monkeypatch.syspath_prepend(str(examples))
    extra = (
        "model=my_flow_policy",
        f"hydra.searchpath=[file://{examples}]",
        "trainer.max_steps=5",
        "online.steps=7",
        "~callbacks.evaluation",
    )
    summary = train(compose_config([*overrides(cube_single_dataset, tmp_path), *extra]))
    assert summary["step"] == 5 + 7
    state = torch.load(tmp_path / "checkpoints" / "last.ckpt", weights_only=False)["online"]
    assert state["env_steps"] == 7 and state["chunks"] == 2


def test_a_library_user_cannot_give_the_online_phase_a_seed_batched_module():
    """The command line refuses seeds with online.steps in the schema; a library user wiring OnlinePhase by hand
    onto a replica-axis module gets the same refusal from its setup, before any env is built."""
    from rql_lightning.modules.rql import RQLModule
    from rql_lightning.online.phase import OnlinePhase
    from tests.runs import bare_trainer

    dims = dict(obs_dim=1, action_dim=1, chunk_size=1, flow_steps=2, num_critics=2)
    module = RQLModule(**dims, actor_hidden_dims=[8], critic_hidden_dims=[8], seeds=[0, 1])
    with pytest.raises(UserError, match="a seed-batched run is offline only"):
        OnlinePhase(steps=5, offline_steps=1).setup(bare_trainer(max_steps=1), module, "fit")

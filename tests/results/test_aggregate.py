"""The tables' arithmetic and run identity, on hand-written summaries with known numbers."""

from __future__ import annotations

import json

import pytest

from rql_lightning.results import ResultsInputError, aggregate, env_markdown, load_runs, model_name
from tests.results.summaries import se, write_summary


def test_aggregation_pools_tasks_per_seed_then_seeds(runs_dir):
    runs, notes = load_runs(runs_dir)
    assert len(runs) == 12 + 6 and len(notes) == 3
    assert any("failed" in n for n in notes) and any("no evaluation" in n for n in notes)
    assert any("duplicate" in n and "/old/" in n for n in notes)
    with_unfinished, _ = load_runs(runs_dir, include_unfinished=True)  # the failed run's last evaluation too
    assert [(r.env, r.task_id, r.status) for r in with_unfinished if r.status != "finished"] == [("scene", 3, "failed")]
    res = aggregate(runs)
    assert res.methods == ["fql", "rql"] and res.envs == ["cube-double", "scene"]

    task = res.task[("rql", "scene", 2)]
    assert task.mean == pytest.approx(0.5) and task.se == pytest.approx(se([0.0, 0.5, 1.0])) and task.n_seeds == 3

    cube = res.env[("rql", "cube-double")]
    assert cube.mean == pytest.approx(0.5) and cube.se == pytest.approx(se([0.3, 0.5, 0.7]))
    assert (cube.n_tasks, cube.n_seeds, cube.n_runs) == (2, 3, 6)
    scene = res.env[("rql", "scene")]
    assert scene.mean == pytest.approx(0.75) and scene.se == pytest.approx(se([0.5, 0.75, 1.0]), abs=1e-6)

    # average over environments: per seed (0.4, 0.625, 0.85), mean 0.625
    average = res.average["rql"]
    assert average.mean == pytest.approx(0.625) and average.se == pytest.approx(se([0.4, 0.625, 0.85]))
    assert (average.n_envs, average.n_tasks, average.n_runs) == (2, 4, 12)
    fql = res.average["fql"]
    assert fql.mean == pytest.approx(0.1) and fql.n_envs == 1 and ("fql", "scene") not in res.env

    table = env_markdown(res)
    assert "| environment | fql | rql |" in table
    assert f"| cube-double | 10.0 ± {100 * se([0, 0.1, 0.2]):.1f} | 50.0 ± {100 * se([0.3, 0.5, 0.7]):.1f} |" in table
    assert "| scene |  | 75.0 ± 14.4 |" in table
    assert "| **average (2 envs)** | 10.0 ± 5.8 (1 of 2) | 62.5 ± 13.0 |" in table


def test_by_config_key_or_data_field_splits_methods(runs_dir):
    runs, _ = load_runs(runs_dir, by=["model.alpha"])
    assert {r.method for r in runs} == {"rql alpha=3.0", "fql alpha=3.0"}
    runs, _ = load_runs(runs_dir, by=["data.source", "data.dataset"])
    assert {r.method for r in runs if r.env == "scene"} == {"rql source=ogbench dataset=scene-play-v0"}


def test_by_key_that_is_not_dotted_or_in_no_run_is_a_user_error(runs_dir):
    with pytest.raises(ResultsInputError, match="--by=alpha is not a dotted key; use a config key"):
        load_runs(runs_dir, by=["alpha"])
    with pytest.raises(ResultsInputError, match="--by=model.alhpa is in no run's config or data record"):
        load_runs(runs_dir, by=["model.alhpa"])


def test_class_names_of_older_summaries_become_short_names():
    assert [model_name({"model": m}) for m in ("RQLModule", "FQLModule", "FlowBCModule")] == ["rql", "fql", "bc"]
    assert model_name({"model_class": "rql_lightning.modules.bc.FlowBCModule"}) == "bc"
    assert model_name({"config": {"model": {"_target_": "rql_lightning.modules.fql.FQLModule"}}}) == "fql"
    assert model_name({"model": "my-rql", "model_class": "mine.MyRQL"}) == "my-rql"  # a user's own name stays


def _data(source: str, dataset: str, fingerprint: str) -> dict:
    key = f"{source}:{dataset}#{fingerprint}"
    return {"source": source, "dataset": dataset, "path": None, "size_bytes": 1, "fingerprint": fingerprint, "key": key}


def test_runs_on_different_data_are_never_pooled_or_deduplicated(tmp_path):
    """The same model, task and seed on Minari and on OGBench data (or two OGBench files): separate results."""
    ogbench = _data("ogbench", "cube-single-play-v0", "aaaa1111bbbb")
    write_summary(tmp_path / "a", "rql", "cube-single", 1, 0, 0.2, data=ogbench)
    write_summary(tmp_path / "b", "rql", "cube-single", 1, 0, 0.8, data=_data("minari", "rql/cs-task1-v0", "cc22"))
    write_summary(tmp_path / "c", "rql", "cube-single", 1, 0, 0.1, data=ogbench, updated_at="2025-01-01")
    runs, notes = load_runs(tmp_path)
    assert [n for n in notes if "duplicate" in n] and all("/c/" in n for n in notes)  # same data: a repeat
    res = aggregate(runs)
    assert res.methods == ["rql (minari)", "rql (ogbench)"]
    assert res.env[("rql (minari)", "cube-single")].mean == pytest.approx(0.8)
    assert res.env[("rql (ogbench)", "cube-single")].mean == pytest.approx(0.2)
    assert res.sources[("rql (minari)", "cube-single")] == ("minari",)

    # a second OGBench file (another size, another fingerprint): the column names the file
    write_summary(tmp_path / "d", "rql", "cube-single", 1, 0, 0.5, data=_data("ogbench", "cube-single-play-v0", "dd33"))
    res = aggregate(load_runs(tmp_path)[0])
    assert res.methods == [
        "rql (minari:rql/cs-task1-v0#cc22)",
        "rql (ogbench:cube-single-play-v0#aaaa1111)",
        "rql (ogbench:cube-single-play-v0#dd33)",
    ]


def test_data_of_older_summaries_comes_from_their_config(tmp_path):
    minari = {"data": {"_target_": "rql_lightning.data.minari.MinariDataModule", "dataset_id": "rql/cs-task1-v0"}}
    write_summary(tmp_path / "m", "RQLModule", "cube-single", 1, 0, 0.8, config=minari)
    write_summary(tmp_path / "o", "RQLModule", "cube-single", 1, 0, 0.2)
    runs, notes = load_runs(tmp_path)
    assert not notes and sorted(r.data.key for r in runs) == ["minari:rql/cs-task1-v0", "ogbench:cube-single-play-v0"]
    assert sorted(r.method for r in runs) == ["rql (minari)", "rql (ogbench)"]


def test_unreadable_summaries_are_named_and_the_others_kept(runs_dir):
    broken = write_summary(runs_dir / "broken", "RQLModule", "scene", 5, 0, 0.5)
    (broken / "summary.json").write_text('{"task": "scene", "seed"')  # a run killed mid-write by an old writer
    listed = write_summary(runs_dir / "listed", "RQLModule", "scene", 5, 1, 0.5)
    (listed / "summary.json").write_text("[1, 2]")
    odd = write_summary(runs_dir / "odd", "RQLModule", "scene", 5, 2, 0.5)
    (odd / "summary.json").write_text(json.dumps({**json.loads((odd / "summary.json").read_text()), "task_id": "x"}))
    runs, notes = load_runs(runs_dir)
    assert len(runs) == 18  # every good run still counts
    named = {str(p / "summary.json") for p in (broken, listed)} | {str(odd)}
    assert all(any(n.startswith(p) for n in notes) for p in named), notes
    assert all("\n" not in n for n in notes)
    assert [n for n in notes if "unreadable" in n and "broken" in n]
    assert [n for n in notes if "not a JSON object" in n] and [n for n in notes if "malformed" in n]


def test_missing_runs_dir_is_a_user_error(tmp_path):
    with pytest.raises(ResultsInputError, match=r"runs_dir=\S+missing is not a directory; pass the folder"):
        load_runs(tmp_path / "missing")

"""``rql-results`` on a directory of summaries: the files it writes, its figures, and its one-line errors."""

from __future__ import annotations

import csv
import subprocess
import sys
from itertools import combinations
from pathlib import Path

import pytest
from matplotlib.backends.backend_agg import FigureCanvasAgg

from rql_lightning.cli.results import main
from rql_lightning.results import aggregate, format_steps, load_runs, plot_curves, plot_overview
from tests.results.summaries import se, write_summary

RQL_RESULTS = str(Path(sys.executable).with_name("rql-results"))
PNG = b"\x89PNG\r\n\x1a\n"


def tick_labels(fig, axis: str = "x") -> list[list[str]]:
    """Each panel's tick label texts, and no two labels of a panel overlapping, once drawn."""
    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    panels = []
    for ax in fig.axes:
        low, high = sorted(getattr(ax, f"get_{axis}lim")())
        shown = [t for t in getattr(ax, f"get_{axis}ticklabels")() if t.get_text()]
        ticks = [t for t in shown if low <= t.get_position()[0 if axis == "x" else 1] <= high]
        boxes = [t.get_window_extent(canvas.get_renderer()) for t in ticks]
        assert not [(a, b) for a, b in combinations(boxes, 2) if a.overlaps(b)], [t.get_text() for t in ticks]
        panels.append([t.get_text() for t in ticks])
    return panels


def test_steps_read_in_thousands():
    assert [format_steps(x) for x in (0, 500, 2500, 100_000, 1_500_000)] == ["0", "500", "2.5k", "100k", "1.5M"]


def test_curves_have_step_axes_in_thousands_and_one_panel_per_method(runs_dir):
    runs, _ = load_runs(runs_dir)
    fig = plot_curves(runs, "cube-double")
    assert [ax.get_title() for ax in fig.axes] == ["cube-double: fql", "cube-double: rql"]
    for labels in tick_labels(fig):
        assert labels[0] == "0" and "100k" in labels and "200k" in labels
    assert fig.axes[0].get_xlabel() == "training step" and fig.axes[0].get_ylabel() == "success rate (%)"


def test_a_single_evaluation_is_a_point_on_a_readable_axis(tmp_path):
    write_summary(tmp_path, "RQLModule", "scene", 1, 0, 0.5, curve=[{"step": 1975, "success_rate": 0.5}])
    (ax,) = plot_curves(load_runs(tmp_path)[0], "scene").axes
    (labels,) = tick_labels(ax.figure)
    assert ax.get_xlim()[0] == 0 and ax.get_xlim()[1] > 1975
    assert labels == ["0", "500", "1k", "1.5k", "2k"]


def test_overview_has_a_bar_per_environment_and_method_with_error_bars(runs_dir):
    res = aggregate(load_runs(runs_dir)[0])
    fig = plot_overview(res)
    (ax,) = fig.axes
    (groups,) = tick_labels(fig)
    assert groups == ["cube-double", "scene", "average"]
    bars = {c.get_label(): [p.get_height() for p in c.patches] for c in ax.containers if hasattr(c, "patches")}
    assert bars["rql"] == pytest.approx([50.0, 75.0, 62.5]) and bars["fql"][0] == pytest.approx(10.0)
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["fql", "rql"]
    errors = [c.errorbar for c in ax.containers if hasattr(c, "errorbar")]
    assert len(errors) == 2 and all(e is not None for e in errors)


def test_rql_results_writes_tables_and_figures(runs_dir, tmp_path, capsys):
    out = tmp_path / "results"
    assert main([str(runs_dir), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "| cube-double |" in printed and "| scene | 2 |" in printed and "## Data" in printed

    with (out / "results_env.csv").open() as f:
        rows = {(r["method"], r["env"]): r for r in csv.DictReader(f)}
    assert float(rows[("rql", "average")]["success_mean"]) == pytest.approx(0.625, abs=1e-6)
    assert float(rows[("rql", "scene")]["success_se"]) == pytest.approx(se([0.5, 0.75, 1.0]), abs=1e-6)
    assert rows[("rql", "cube-double")]["n_runs"] == "6" and rows[("rql", "scene")]["data_source"] == "ogbench"
    with (out / "results_task.csv").open() as f:
        tasks = list(csv.DictReader(f))
    assert len(tasks) == 6 and {r["model"] for r in tasks} == {"rql", "fql"}
    with (out / "runs.csv").open() as f:
        assert len(list(csv.DictReader(f))) == 18
    assert "## Success rate by task" in (out / "results.md").read_text()
    for png in (out / "overview.png", out / "curves" / "cube-double.png", out / "curves" / "scene.png"):
        assert png.read_bytes()[:8] == PNG

    assert main([str(runs_dir), "--out", str(out), "--format", "csv", "--no-plots"]) == 0
    header = "method,model,data_source,env,success_mean,success_se,n_envs,n_tasks,n_seeds,n_runs\n"
    assert capsys.readouterr().out.startswith(header)


@pytest.mark.parametrize(
    "args, named, message",
    [
        (["{root}/missing"], "runs_dir={root}/missing ", "is not a directory; pass the folder"),
        (["{root}"], "runs_dir={root} ", "holds no finished run with a summary.json (0 left out)"),
        (["{root}", "--by", "alpha"], "", "--by=alpha is not a dotted key"),
    ],
)
def test_bad_input_is_one_error_line(tmp_path, capsys, args, named, message):
    # docs/errors.md rows 61, 62 and 63
    with pytest.raises(SystemExit) as exit_info:
        main([a.format(root=tmp_path) for a in args] + ["--out", str(tmp_path / "results")])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: " + named.format(root=tmp_path) + message)


def test_an_unreadable_summary_is_named_on_stderr_and_the_others_used(runs_dir, tmp_path, capsys):
    # docs/errors.md row 64
    broken = write_summary(runs_dir / "broken", "RQLModule", "scene", 5, 0, 0.5)
    (broken / "summary.json").write_text('{"task": "scene", "seed"')  # a run killed mid-write by an old writer
    main([str(runs_dir), "--out", str(tmp_path / "results"), "--no-plots"])
    err = capsys.readouterr().err
    assert f"rql-results: left out {broken / 'summary.json'}: unreadable (" in err
    assert (tmp_path / "results" / "results.md").is_file()


@pytest.mark.slow
def test_rql_results_command_exits_2_with_one_line(tmp_path):
    proc = subprocess.run([RQL_RESULTS, str(tmp_path / "missing")], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and proc.stdout == ""
    assert (
        proc.stderr.startswith("error: runs_dir=") and proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr
    )

"""``rql-results --reference``: the reference's arithmetic on hand-written summaries, and a malformed reference
CSV as one error line (the comparison on real runs: ``test_real_runs.py``)."""

from __future__ import annotations

import math

import pytest

from rql_lightning.cli.results import main
from rql_lightning.results import aggregate, compare, load_reference, load_runs
from tests.results.summaries import se

HEADER = "environment,task,method,success,stderr\n"


def write_csv(path, text: str):
    path.write_text(text)
    return path


def test_an_environment_reference_is_its_own_row_or_the_mean_of_its_task_rows(runs_dir, tmp_path):
    ref = load_reference(
        write_csv(
            tmp_path / "ref.csv",
            HEADER + "cube-double,1,rql,40,3\ncube-double,2,rql,70,4\nscene,,rql,90,\nscene,1,rql,100,\n",
        )
    )
    by_cell = {(c.method, c.env, c.task_id): c for c in compare(aggregate(load_runs(runs_dir)[0]), ref)}

    env = by_cell[("rql", "cube-double", None)]  # no environment row: the mean of tasks 1 and 2
    assert env.ref.mean == pytest.approx(0.55) and env.ref.se == pytest.approx(math.sqrt(0.03**2 + 0.04**2) / 2)
    assert env.difference == pytest.approx(0.5 - 0.55)
    assert env.ours.se == pytest.approx(se([0.3, 0.5, 0.7])) and env.within_2se is True

    scene = by_cell[("rql", "scene", None)]  # its own row wins over the one task row given
    assert scene.ref.mean == pytest.approx(0.9) and math.isnan(scene.ref.se)
    assert scene.difference == pytest.approx(0.75 - 0.9)
    assert scene.within_2se is (0.15 <= 2 * se([0.5, 0.75, 1.0]))  # only ours has a standard error

    task = by_cell[("rql", "scene", 2)]
    assert task.ref is None and task.within_2se is None  # the reference lacks it
    assert by_cell[("fql", "cube-double", None)].ref is None  # no fql rows at all


@pytest.mark.parametrize(
    "text, message",
    [
        (None, "reference={csv} cannot be read (No such file or directory); pass a CSV with columns environment"),
        ("environment,task,success\ncube-double,1,40\n", "reference={csv} lacks column(s) method; write columns"),
        (HEADER, "reference={csv} has a header but no rows"),
        (HEADER + "cube-double,1,rql,high,3\n", "reference={csv} line 2: success='high' is not a percentage"),
        (HEADER + "cube-double,1,rql,0.4,3\ncube-double,2,rql,40,-1\n", "reference={csv} line 3: stderr='-1' is"),
        (HEADER + "cube-double,one,rql,40,\n", "reference={csv} line 2: task='one' is not a task number"),
        (HEADER + "scene,,rql,40,\nscene,,rql,50,\n", "reference={csv} line 3: a second row for rql/scene; keep one"),
    ],
)
def test_a_malformed_reference_is_one_error_line(runs_dir, tmp_path, capsys, text, message):
    path = tmp_path / "ref.csv"
    if text is not None:
        write_csv(path, text)
    with pytest.raises(SystemExit) as exit_info:
        main([str(runs_dir), "--reference", str(path), "--out", str(tmp_path / "results"), "--no-plots"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: " + message.format(csv=path)), err
    assert not (tmp_path / "results").exists()  # checked before anything is written

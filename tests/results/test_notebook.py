"""``notebooks/results.ipynb`` runs top to bottom and shows the tables and figures ``rql-results`` writes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_results_notebook_runs(runs_dir, monkeypatch):
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel

    try:
        KernelSpecManager().get_kernel_spec("python3")
    except NoSuchKernel:
        pytest.skip("no 'python3' Jupyter kernel: pip install ipykernel (the dev extra) into this environment")
    monkeypatch.setenv("RQL_RUNS_DIR", str(runs_dir))
    nb = nbformat.read(REPO / "notebooks" / "results.ipynb", as_version=4)
    nbclient.NotebookClient(
        nb, timeout=120, kernel_name="python3", resources={"metadata": {"path": str(REPO)}}
    ).execute()
    outputs = [o for cell in nb.cells if cell.cell_type == "code" for o in cell.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    text = json.dumps([o.get("data", {}).get("text/markdown", "") for o in outputs])
    assert "| environment | fql | rql |" in text and "62.5" in text  # the environment table, short names
    assert "ogbench:scene-play-v0" in text  # the data table
    images = [o for o in outputs if "image/png" in o.get("data", {})]
    assert len(images) == 1 + 2  # the overview and one figure per environment

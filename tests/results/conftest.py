from __future__ import annotations

from pathlib import Path

import pytest

from tests.results.summaries import write_grid


@pytest.fixture
def runs_dir(tmp_path) -> Path:
    return write_grid(tmp_path / "runs")

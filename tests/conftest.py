"""Shared test setup: tiny networks run fastest on one intra-op thread (and CI has 2 cores)."""

from __future__ import annotations

import torch

torch.set_num_threads(1)

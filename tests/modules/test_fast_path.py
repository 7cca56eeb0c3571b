"""The fast path computes the same update: compiled losses (forward and backward) == eager, for one run. The
replica axis compiled (seeds and tasks) is tests/seeds/test_task_column_paths.py's compiled column."""

from __future__ import annotations

import pytest
import torch

from rql_lightning.modules.rql import RQLModule
from tests.modules.two_mode import two_mode_sampler


def make(compile_: bool) -> RQLModule:
    torch.manual_seed(0)
    return RQLModule(
        obs_dim=1,
        action_dim=1,
        chunk_size=1,
        flow_steps=2,  # two Euler steps and one hidden layer: fewer kernels to compile; the equivalence is the same
        num_critics=2,
        actor_hidden_dims=[32],
        critic_hidden_dims=[32],
        compile=compile_,
    )


def scalar_cpu_kernels():
    """Inductor's C++ kernels without SIMD: g++ builds plain loops in about half the time, with no ISA probe builds
    (a cold cache, as on a fresh machine, compiles every kernel). What these tests pin is that our update traces,
    differentiates and lowers to eager's numbers; inductor's SIMD variants are torch's to test, and a GPU runs Triton
    kernels anyway. The ISA list is fixed at a process's first compile: this suite compiles only under this patch."""
    import torch._inductor.config

    return torch._inductor.config.patch({"cpp.vec_isa_ok": False})


@pytest.mark.slow
def test_compiled_update_matches_eager_update():
    eager, compiled = make(False), make(True)
    compiled.load_state_dict(eager.state_dict())
    opts = [m.configure_optimizers() for m in (eager, compiled)]
    sampler, g = two_mode_sampler(), torch.Generator().manual_seed(0)
    for _ in range(3):
        batch = sampler.sample(64, g)
        draws = eager.draw(64, torch.Generator().manual_seed(int(torch.randint(1 << 30, ()))))
        a = eager.update(batch, draws, opts[0])
        with scalar_cpu_kernels():
            b = compiled.update(batch, draws, opts[1])
        torch.testing.assert_close(a["critic_loss"], b["critic_loss"], rtol=1e-5, atol=1e-6)
    for (key, x), y in zip(eager.state_dict().items(), compiled.state_dict().values(), strict=True):
        torch.testing.assert_close(x, y, rtol=1e-5, atol=1e-6, msg=key)

"""Whether MuJoCo can render here, decided once per session before any video test runs.

``envs.py`` turns any render error into a "Rendering disabled" warning, so a test that skipped on that
warning would also skip a broken video path.  Video tests instead call :func:`require_gl` first: where the
backend renders a tiny model, their failures fail."""

from __future__ import annotations

import functools
import os
import subprocess
import sys

import pytest

# A one-sphere model rendered at 8x8: MuJoCo makes a GL context with the backend and draws something.
_GL_PROBE = """
import mujoco
m = mujoco.MjModel.from_xml_string('<mujoco><worldbody><light pos="0 0 1"/><geom size=".1" rgba="1 0 0 1"/>'
                                   '</worldbody></mujoco>')
d = mujoco.MjData(m)
mujoco.mj_forward(m, d)
r = mujoco.Renderer(m, 8, 8)
r.update_scene(d)
assert r.render().max() > 0
r.close()
print("GL_OK")
"""


def gl_env(backend: str) -> dict[str, str]:
    """The environment of a fresh interpreter that renders with ``backend`` (chosen when MuJoCo is imported)."""
    return {**os.environ, "MUJOCO_GL": backend, "PYOPENGL_PLATFORM": backend}


@functools.cache
def gl_renders(backend: str) -> bool:
    """Whether MuJoCo renders with ``MUJOCO_GL=backend`` on this machine."""
    try:
        proc = subprocess.run(
            [sys.executable, "-c", _GL_PROBE], env=gl_env(backend), capture_output=True, text=True, timeout=60
        )
    except subprocess.TimeoutExpired:
        return False
    return proc.returncode == 0 and "GL_OK" in proc.stdout


def require_gl(backend: str) -> None:
    """Skip the calling test unless MuJoCo renders with ``backend`` here."""
    if not gl_renders(backend):
        need = "apt-get install libosmesa6" if backend == "osmesa" else "an EGL driver, e.g. libegl1 + Mesa"
        pytest.skip(f"MuJoCo cannot render with MUJOCO_GL={backend} on this machine ({need})")

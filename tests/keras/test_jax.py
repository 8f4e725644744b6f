"""Optional: the same loss checks on the JAX backend (skipped when jax is not installed).

Keras picks its backend at import, so the checks run in a child pytest with
KERAS_BACKEND=jax: once with float64 (JAX_ENABLE_X64=1) and once without it, where the
float64 cases skip and the batch losses take their float32 path.
Run: ``pip install jax`` then ``pytest -m jax tests/keras``.
"""

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent

pytestmark = [
    pytest.mark.jax,
    pytest.mark.skipif(importlib.util.find_spec("jax") is None, reason="jax is not installed (optional)"),
    pytest.mark.skipif(importlib.util.find_spec("keras") is None, reason="keras is not installed"),
]


# x64 on: every check of test_losses.py and test_saving.py. x64 off: the float32 paths only.
@pytest.mark.parametrize(
    "x64, selection",
    [("1", []), ("0", ["-k", "float32 or bounds or half or hinge or no_valid or errors or refused or label"])],
)
def test_keras_losses_on_jax(x64, selection):
    env = {**os.environ, "KERAS_BACKEND": "jax", "JAX_ENABLE_X64": x64, "JAX_PLATFORMS": "cpu"}
    files = [str(HERE / "test_losses.py")] + ([str(HERE / "test_saving.py")] if x64 == "1" else [])
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *files, *selection],
        cwd=HERE.parents[1], env=env, capture_output=True, text=True, timeout=600,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert " passed" in result.stdout

"""The core package never imports Keras: it is an optional extra."""

import subprocess
import sys


def test_core_package_imports_without_keras():
    code = (
        "import sys, lossless_triplet, lossless_triplet.losses\n"
        "prefixes = ('keras.', 'lossless_triplet.keras')\n"
        "loaded = sorted(m for m in sys.modules if m == 'keras' or m.startswith(prefixes))\n"
        "assert not loaded, loaded\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr

"""Shared test set-up: Keras runs on the torch backend (the oracle extra installs no TensorFlow), and
the generated kernels are compiled in the background while the first tests run
(tests/helpers/warm_kernels.py: on CI's two cores this takes the kernels' cold compiles, about six
minutes, off the suite's path)."""
import os
import subprocess
import sys
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "torch")

_WARMER = []


def pytest_collection_finish(session):
    """Start the compiling process where the session runs the kernel tests (which load every preset's
    kernels); a run of other tests alone does not pay for it."""
    if os.environ.get("GRUKIT_NO_WARM_KERNELS") or not any(
            item.nodeid.startswith("tests/kernels/") for item in session.items):
        return
    _WARMER.append(subprocess.Popen([sys.executable, str(Path(__file__).parent / "helpers" / "warm_kernels.py")],
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                    env={**os.environ, "NUMBA_NUM_THREADS": "1"}))


def pytest_sessionfinish(session, exitstatus):
    for proc in _WARMER:
        proc.kill()
        proc.wait()

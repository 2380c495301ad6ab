"""Timing of a batched forward pass (docs/layers.md, "Speed"): ``python tests/bench_layers.py``.

B=64 sequences, T=50 steps, D=H=32, one PyTorch-layout GRU layer, numpy engine:

* ``grukit forward --engine numpy --json`` in a fresh process (start-up included), inputs from a
  ``.npy`` file and, for comparison, written out in the YAML file;
* in one process: the batch at once (:func:`solve_layers`) against the 64 sequences one by one
  (the single-cell path, :func:`grukit.derive.numeric.solve.solve`, each problem built in memory).

Not a test (pytest does not collect it): timings depend on the machine and its load.
"""
from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import yaml

B, T, D, H = 64, 50, 32, 32


def main() -> None:
    from grukit.derive.files.layer_file import load_any
    from grukit.derive.layers.problem import solve_layers
    from grukit.derive.numeric.problem import Problem
    from grukit.derive.numeric.solve import solve

    rng = np.random.default_rng(0)
    arrays = {"weight_ih_l0": 0.3 * rng.standard_normal((3 * H, D)),
              "weight_hh_l0": 0.3 * rng.standard_normal((3 * H, H)),
              "bias_ih_l0": 0.1 * rng.standard_normal(3 * H), "bias_hh_l0": 0.1 * rng.standard_normal(3 * H)}
    x = rng.uniform(-1, 1, (B, T, D))
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        np.savez(tmp / "w.npz", **arrays)
        np.save(tmp / "x.npy", x)
        (tmp / "npy.yaml").write_text("convention: pytorch\ninputs: {file: x.npy}\n"
                                      "weights: {layout: pytorch, file: w.npz}\n")
        (tmp / "inline.yaml").write_text(yaml.safe_dump({"convention": "pytorch", "inputs": x.tolist(),
                                                         "weights": {"layout": "pytorch", "file": "w.npz"}}))
        for name in ("npy.yaml", "inline.yaml"):
            cmd = [sys.executable, "-m", "grukit.codegen.cli", "forward", str(tmp / name), "--engine", "numpy",
                   "--json"]
            best = min(_wall(cmd) for _ in range(3))
            print(f"grukit forward {name} (B={B}, T={T}, D=H={D}), fresh process: {best:.2f} s (best of 3)")
        problem = load_any(tmp / "npy.yaml")
        solve_layers(problem, "numpy")  # warm: SymPy's lambdify of each stage, once per process
        start = time.perf_counter()
        batched = solve_layers(problem, "numpy")
        t_batch = time.perf_counter() - start
        start = time.perf_counter()
        cell = problem.network.layers[0].cells[0]
        for b in range(B):  # the single-cell path, each sequence built in memory (no file to read)
            one = solve(Problem(tmp / "one.yaml", cell.convention, x[b], np.zeros(H), cell.params), "numpy")
            assert np.allclose([tr.values["h"] for tr in one.traces], batched.outputs[b], atol=1e-13)
        t_loop = time.perf_counter() - start
        print(f"in one process: the batch at once {t_batch:.3f} s; the 64 sequences one by one "
              f"{t_loop:.3f} s ({t_loop / t_batch:.0f}x)")


def _wall(cmd) -> float:
    start = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


if __name__ == "__main__":
    main()

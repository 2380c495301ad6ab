"""`grukit bench`'s honesty, at sizes that take no time: the network figure's two systems compute the
same thing, a ratio is the median of per-round ratios, the targets read the right numbers (the
issue's baseline included), and a comparison added through the hook reaches the report."""
from __future__ import annotations

import json

import numpy as np
from helpers import ROOT

from grukit.codegen.bench import report, run


def test_the_network_figures_two_systems_compute_the_same_gradients():
    systems = run.network_systems((3, 5, 4, 3), threads=2)
    ours = systems["grukit network float64 train"]()
    theirs = systems["numpy engine network float64 train"]()
    np.testing.assert_allclose(ours.inputs, np.stack(theirs.inputs).transpose(2, 0, 1), rtol=0, atol=1e-12)
    for mine, other in zip(ours.params, theirs.params, strict=True):
        assert set(mine) == set(other)
        for p in other:
            np.testing.assert_allclose(mine[p], other[p], rtol=0, atol=1e-12)


def test_a_ratio_is_the_median_of_the_per_round_ratios():
    times = {"slow": [4.0, 9.0, 2.0], "fast": [1.0, 1.0, 2.0]}  # per round 4, 9, 1: median 4 (not 5 / 1.33)
    assert run.ratio(times, "slow", "fast") == 4.0
    assert run.ratio(times, "slow", "missing") is None


def test_rounds_rotate_the_order_and_time_every_system_once_a_round():
    calls = []
    systems = {name: (lambda name=name: calls.append(name)) for name in "abc"}
    times = run.rounds(systems, 3, warm=False)
    assert calls == list("abcbcacab") and all(len(v) == 3 for v in times.values())


def entry(size, times, ratios=None):
    return {"size": list(size), "times": times, "ratios": ratios or {}, "gflops": {}, "peak_fraction": {},
            "breakdown": {}}


def test_targets_compare_with_the_issues_times_and_the_network_figure():
    size = (32, 64, 256, 256)
    result = {"sizes": [entry(size, {"grukit float32 forward": 0.0271 / 2.5, "grukit float32 train": 0.0573 / 1.2})],
              "network": {"size": [32, 64, 128, 128], "ratio": 21.0},
              "compile": {"float32": {"cold": {"total_s": 3.0}, "cached": {"total_s": 0.5}}}}
    found = {t["target"]: t for t in report.evaluate_targets(result)}
    forward = found["float32 forward vs the issue's grukit forward, H >= 256"]
    assert forward["met"] and abs(forward["measured"][0]["value"] - 2.5) < 1e-12
    train = found["float32 forward+backward vs the issue's grukit training, H >= 256"]
    assert not train["met"] and abs(train["measured"][0]["value"] - 1.2) < 1e-12
    assert found["two bidirectional layers, forward+backward vs the NumPy engine"]["met"]
    assert found["cold compile of one module (seconds, below)"]["met"]


def test_a_comparison_added_through_the_hook_reaches_the_report():
    assert run.grukit_systems in run.SYSTEMS and run.torch_systems in run.SYSTEMS
    name = "grukit.GRU float32 train vs torch float32 train"
    assert name not in report.TABLED
    result = json.loads((ROOT / "docs" / "benchmarks.json").read_text())
    result["sizes"][0]["ratios"][name] = 1.5
    size = ",".join(map(str, result["sizes"][0]["size"]))
    lines = report.markdown(result, None).splitlines()
    assert [line for line in lines if name in line] == [f"| {size} | {name} | 1.50 |"]

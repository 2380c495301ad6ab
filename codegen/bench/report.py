"""The benchmark's targets and report: which ratios the issue asks for, whether a run meets them, and
``docs/benchmarks.md`` with its plot, written from a run's result (also from a saved JSON)."""
from __future__ import annotations

from pathlib import Path

NUMPY_TRAIN_LIMIT_S = 0.5  # the numpy engine's train is timed where its forward takes less than this

ISSUE_TIMES_MS = {(32, 64, 256, 256): (27.1, 57.3), (32, 32, 512, 512): (48.8, 107.0),
                  (32, 100, 128, 256): (29.8, 75.6)}
"""grukit's float32 (forward, train) ms at H >= 256 when issue 16 was filed (its table: one process,
median of 9 interleaved rounds, on these machines): the baseline of the "x today's" targets, which
compare with another day's run and so carry that day's load too."""

TARGETS = [
    # (description, kind, dtype, size or None for every size, threshold) -- issue 16's acceptance first
    ("float32 forward+backward vs PyTorch, every size", "train_vs_torch", "float32", None, 1.0),
    ("float32 forward vs ONNX Runtime, every size", "fwd_vs_ort", "float32", None, 1.0),
    ("float32 forward vs the issue's grukit forward, H >= 256", "fwd_vs_issue", "float32", None, 2.0),
    ("float32 forward+backward vs the issue's grukit training, H >= 256", "train_vs_issue", "float32", None, 1.5),
    ("float64 forward+backward vs PyTorch float64, every size", "train_vs_torch", "float64", None, 1.2),
    ("two bidirectional layers, forward+backward vs the NumPy engine", "network", "float64", None, 20.0),
    # issue 17's acceptance: grukit.GRU's training step (forward, loss, backward, SGD) against nn.GRU's
    ("float32 grukit.GRU training step vs nn.GRU's, every size", "module_vs_torch", "float32", None, 1.0),
    ("float32 grukit.GRU training step vs nn.GRU's at (32, 64, 32, 32)", "module_vs_torch", "float32",
     (32, 64, 32, 32), 3.0),
    ("cached import + first call (seconds, below)", "first_call", None, None, 1.0),
    ("cold compile of one module (seconds, below)", "cold_compile", None, None, 15.0),
]
"""Each target's threshold: a ratio at least that (how many times faster), or seconds below it."""

SECONDS = {"first_call": ("cached", "total_s"), "cold_compile": ("cold", "total_s")}


def _measured(kind: str, dtype: str | None, size: tuple, entry: dict):
    if kind == "train_vs_torch":
        return entry["ratios"].get(f"grukit {dtype} train vs torch {dtype} train")
    if kind == "module_vs_torch":
        return entry["ratios"].get(f"grukit GRU {dtype} train step vs torch nn.GRU {dtype} train step")
    if kind == "fwd_vs_ort":
        return entry["ratios"].get(f"grukit {dtype} forward vs onnxruntime {dtype} forward")
    if kind in ("fwd_vs_issue", "train_vs_issue") and size in ISSUE_TIMES_MS:
        mode = "forward" if kind == "fwd_vs_issue" else "train"
        then = ISSUE_TIMES_MS[size][mode == "train"] / 1e3
        now = entry["times"].get(f"grukit {dtype} {mode}")
        return then / now if now else None
    return None


def evaluate_targets(result: dict) -> list[dict]:
    out = []
    by_size = {tuple(e["size"]): e for e in result["sizes"]}
    for text, kind, dtype, size, threshold in TARGETS:
        if kind in SECONDS:
            which, key = SECONDS[kind]
            rows = [(None, max(c[which][key] for c in result["compile"].values()))]
            met = rows[0][1] < threshold
        else:
            if kind == "network":
                net = result.get("network") or {}
                rows = [(tuple(net["size"]), net["ratio"])] if net.get("ratio") is not None else []
            else:
                rows = [(s, _measured(kind, dtype, s, e)) for s, e in by_size.items() if size in (None, s)]
            rows = [(s, v) for s, v in rows if v is not None]
            met = bool(rows) and all(v >= threshold for _, v in rows)
        out.append({"target": text, "threshold": threshold, "met": met,
                    "measured": [{"size": list(s) if s else None, "value": v} for s, v in rows]})
    return out


TABLED = {f"grukit {d} {m} vs {peer}" for d in ("float32", "float64") for m in ("forward", "train")
          for peer in (f"torch {d} {m}", f"numpy engine float64 {m}")} | {
    "grukit float32 forward vs onnxruntime float32 forward"}
"""The ratios the tables below show; the report lists any other under "Other ratios" (a system added to
the bench's ``SYSTEMS`` and ``COMPARISONS`` appears there without a change here)."""


def _load(values) -> str:
    return ", ".join(f"{v:.1f}" for v in values)


def _fmt_ms(seconds: float) -> str:
    ms = seconds * 1e3
    return f"{ms:.3g}" if ms < 100 else f"{ms:.0f}"


def markdown(result: dict, plot_name: str | None) -> str:
    m, s = result["machine"], result["settings"]
    peak_how = ("on Fortran-ordered operands through SciPy's BLAS (the one the kernels call), with the same threads"
                if "peak" in s else "through the BLAS the kernels call")  # runs before the peak's method was kept
    lines = ["# Benchmarks", "",
             "Written by `grukit bench` (do not edit by hand; rerun it). The generated Numba kernels of the "
             f"`{s['convention']}` convention against PyTorch's `nn.GRU`, ONNX Runtime's `GRU` "
             "(`linear_before_reset=1`, the same function) and grukit's NumPy engine, all in one process.", "",
             f"- Machine: {m['processor']}, {m['cpus']} CPUs, {m['platform']}; Python {m['python']}, NumPy "
             f"{m['numpy']}, Numba {m['numba']}, PyTorch {m['torch']}, ONNX Runtime {m['onnxruntime']}.",
             f"- Load average (1, 5, 15 min) at the start {_load(result['load']['start'])}, at the end "
             f"{_load(result['load']['end'])}: other processes share these cores, and every multi-threaded "
             "library slows by a varying factor while they run.",
             f"- Threads: {m['threads']} for every system; environment "
             + ", ".join(f"`{k}={v}`" for k, v in s["environment"].items())
             + "; ONNX Runtime's session with `session.intra_op.allow_spinning=0` (its idle workers otherwise "
             "spin after each call and take a core from the system timed next).",
             f"- {s['rounds']} interleaved rounds per size (the NumPy engine: {s['numpy_engine_rounds']}); times are "
             "medians, a ratio is the median of the per-round ratios (how many times faster grukit is).",
             "- forward = inference (PyTorch under `no_grad`); train = forward + backward (PyTorch autograd, "
             "grukit's BPTT kernel) with dL/dh_t given, all gradients returned in PyTorch's arrays.",
             "- GFLOP/s count forward ≈ 6·T·B·H·(D+H), training ≈ 18·T·B·H·(D+H); the peak is a "
             f"{'1024' if s['quick'] else '2048'}³ GEMM {peak_how}: "
             f"SGEMM {result['peak']['float32']:.0f} GFLOP/s, DGEMM {result['peak']['float64']:.0f} GFLOP/s "
             "(this run).", ""]
    lines += ["## Targets", "", "| target | threshold | measured | met |", "|---|---|---|---|"]
    for t in result["targets"]:
        vals = ", ".join((f"{tuple(v['size'])}: " if v["size"] else "") + f"{v['value']:.2f}" for v in t["measured"])
        met = "yes" if t["met"] else "**no**" if vals else "not measured in this run"
        lines.append(f"| {t['target']} | {t['threshold']} | {vals or '–'} | {met} |")
    lines += [""]
    for dtype in ("float32", "float64"):
        lines += [f"## {dtype}", "", "Times in ms (GFLOP/s, % of the GEMM peak).", ""]
        header = ["B,T,D,H", "grukit fwd", "torch fwd"] + (["ORT fwd"] if dtype == "float32" else []) + [
            "grukit train", "torch train", "fwd vs torch", "fwd vs ORT" if dtype == "float32" else None,
            "train vs torch"]
        header = [h for h in header if h]
        lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        for e in result["sizes"]:
            t, g, pf, r = e["times"], e["gflops"], e["peak_fraction"], e["ratios"]

            def cell(name):
                if name not in t:
                    return "–"
                return f"{_fmt_ms(t[name])} ({g[name]:.0f}, {100 * pf[name]:.0f}%)"

            row = [",".join(map(str, e["size"])), cell(f"grukit {dtype} forward"), cell(f"torch {dtype} forward")]
            if dtype == "float32":
                row.append(cell("onnxruntime float32 forward"))
            row += [cell(f"grukit {dtype} train"), cell(f"torch {dtype} train"),
                    f"{r.get(f'grukit {dtype} forward vs torch {dtype} forward', float('nan')):.2f}×"]
            if dtype == "float32":
                row.append(f"{r.get('grukit float32 forward vs onnxruntime float32 forward', float('nan')):.2f}×")
            row.append(f"{r.get(f'grukit {dtype} train vs torch {dtype} train', float('nan')):.2f}×")
            lines.append("| " + " | ".join(row) + " |")
        lines += [""]
    lines += ["## The NumPy engine (float64, one sequence at a time)", "",
              f"Timed after the others in {s['numpy_engine_rounds']} rounds; its forward + backward only where its "
              f"forward takes less than {NUMPY_TRAIN_LIMIT_S:g} s.", "",
              "| B,T,D,H | forward ms | train ms | grukit float64 forward is ... × faster | train ... × faster |",
              "|---|---|---|---|---|"]
    for e in result["sizes"]:
        t, r = e["times"], e["ratios"]
        train = "numpy engine float64 train"
        lines.append(f"| {','.join(map(str, e['size']))} | {_fmt_ms(t['numpy engine float64 forward'])} | "
                     + (f"{_fmt_ms(t[train])} | " if train in t else "not timed | ")
                     + f"{r['grukit float64 forward vs numpy engine float64 forward']:.0f} | "
                     + (f"{r['grukit float64 train vs ' + train]:.0f} |" if train in t else "– |"))
    net = result.get("network")
    if net:
        mine, peer = "grukit network float64 train", "numpy engine network float64 train"
        lines += ["", "## A whole network", "",
                  f"Two bidirectional `{s['convention']}` layers over a padded batch (lengths from T/2 to T), "
                  f"B,T,D,H = {','.join(map(str, net['size']))}, forward + every gradient of a weighted sum of "
                  "the outputs, float64: the generated kernels (one call per cell and direction, "
                  "`codegen/kernels/network.py`) against the NumPy engine's walk of the same network "
                  f"(`derive/layers/run.py`), {len(net['rounds'][mine])} interleaved rounds of one call each.", "",
                  "| kernels ms | NumPy engine ms | kernels ... × faster | CPU ms, kernels | CPU ms, NumPy engine |",
                  "|---|---|---|---|---|",
                  f"| {_fmt_ms(net['times'][mine])} | {_fmt_ms(net['times'][peer])} | {net['ratio']:.1f} | "
                  f"{_fmt_ms(net['cpu'][mine])} | {_fmt_ms(net['cpu'][peer])} |", "",
                  "CPU time counts every thread of the process (median per call): where it exceeds the wall time "
                  "by far, a system's threads spent it waiting on one another."]
    others = [(e["size"], name, value) for e in result["sizes"] for name, value in e["ratios"].items()
              if name not in TABLED]
    if others:
        lines += ["", "## Other ratios", "", "Every other comparison the run made: how many times faster the first "
                  "system is than the second, the median of the per-round ratios.", "",
                  "| B,T,D,H | systems | ratio |", "|---|---|---|"]
        lines += [f"| {','.join(map(str, size))} | {name} | {value:.2f} |" for size, name, value in others]
    lines += ["", "## Where the time goes", "",
              "Per time step: the recurrent GEMM timed alone through the same BLAS call (forward `h @ W`, backward "
              "`delta @ W^T`), and what is left of the kernels' time per step once every GEMM is taken out (the "
              "fused pointwise loops, copies and call overhead). The big GEMMs run once over all T·B rows.", "",
              "| B,T,D,H | dtype | step GEMM fwd µs (GFLOP/s) | step GEMM bwd µs | big GEMMs ms (GFLOP/s) | "
              "rest per step, fwd µs | rest per step, train µs |", "|---|---|---|---|---|---|---|"]
    for e in result["sizes"]:
        for dtype, b in e["breakdown"].items():
            lines.append(f"| {','.join(map(str, e['size']))} | {dtype} | {b['step_gemm_forward_us']:.1f} "
                         f"({b['step_gemm_gflops']:.0f}) | {b['step_gemm_backward_us']:.1f} | "
                         f"{b['big_gemms_ms']:.2f} ({b['big_gemm_gflops']:.0f}) | "
                         f"{b['forward_pointwise_and_rest_us']:.1f} | {b['train_pointwise_and_rest_us']:.1f} |")
    lines += ["", "A negative rest means the GEMMs timed alone took longer than inside the kernel: the "
              "machine's load moved between the two measurements."]
    lines += ["", "## Compiling", "",
              "The forward and backward kernels of one module, in a fresh process: with an empty Numba cache "
              "(cold), then again from the cache (what a user's second run pays).", "",
              "| dtype | cold: import s | cold: compile + first forward s | cold: compile + first backward s | "
              "cached: import + first forward + backward s |", "|---|---|---|---|---|"]
    for dtype, c in result["compile"].items():
        lines.append(f"| {dtype} | {c['cold']['import_s']:.2f} | {c['cold']['forward_s']:.2f} | "
                     f"{c['cold']['backward_s']:.2f} | {c['cached']['total_s']:.2f} |")
    if plot_name:
        lines += ["", f"![time per size]({plot_name})"]
    lines += ["", "Notes on the numbers, and why a target is missed where one is: "
              "[kernels.md](kernels.md#performance).", ""]
    return "\n".join(lines)


def write_plot(result: dict, path: Path) -> bool:
    try:
        import matplotlib
    except ImportError:
        return False
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = [",".join(map(str, e["size"])) for e in result["sizes"]]
    names = list(dict.fromkeys(n for e in result["sizes"] for n in e["times"]))
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5), sharey=False)
    systems = list(dict.fromkeys(n.rsplit(" ", 1)[0] for n in names))
    colors = {name: plt.get_cmap("tab10")(i) for i, name in enumerate(systems)}
    for ax, mode in zip(axes, ("forward", "train")):
        for name in names:
            if not name.endswith(mode):
                continue
            ax.plot(labels, [e["times"].get(name, float("nan")) * 1e3 for e in result["sizes"]], marker="o",
                    label=name.rsplit(" ", 1)[0], color=colors[name.rsplit(" ", 1)[0]])
        ax.set_yscale("log")
        ax.set_title({"forward": "forward (inference)", "train": "forward + backward"}[mode])
        ax.set_xlabel("B,T,D,H")
        ax.set_ylabel("ms per call")
        ax.tick_params(axis="x", rotation=30)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7)
    fig.suptitle(f"grukit kernels vs PyTorch, ONNX Runtime, NumPy engine ({result['machine']['threads']} threads)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True



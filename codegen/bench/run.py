"""`grukit bench`: the generated kernels against PyTorch, ONNX Runtime and the NumPy engine.

Everything runs in one child process started with the thread settings below in its environment
(they are read when the libraries load, so the child is the only way to give every library the
same ones): ``THREADS`` threads for everyone (OpenBLAS, OpenMP, PyTorch, ONNX Runtime, Numba),
idle OpenBLAS threads sleep after 4 ms and OpenMP threads spin briefly
(``OPENBLAS_THREAD_TIMEOUT=4``, ``GOMP_SPINCOUNT=10000``): otherwise the pool of one system spins
on the cores the next system is timed on.

Each size is timed in interleaved rounds (every system once per round, the order rotating) and a
ratio is the median of the per-round ratios: these machines drift. The SGEMM/DGEMM peak is measured
in the same run through the BLAS the kernels call (Numba's ``np.dot``). Results go to
``docs/benchmarks.md`` with a plot of time per size (matplotlib, the ``plot`` extra).
"""
from __future__ import annotations

import importlib
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from grukit.codegen.bench.report import NUMPY_TRAIN_LIMIT_S, evaluate_targets, markdown, write_plot
from grukit.codegen.kernels import api as kernels
from grukit.codegen.kernels.network import NetworkKernels
from grukit.derive.cell.equations import cell_equations
from grukit.derive.cell.layouts import LAYOUTS
from grukit.derive.cell.losses import LossHead
from grukit.derive.cell.presets import PRESETS
from grukit.derive.errors import GrukitError
from grukit.derive.layers.network import Cell, Layer, Network
from grukit.derive.layers.run import backward_network, run_network, unarrange_outputs
from grukit.derive.numeric.batch import BatchedNumpyEngine
from grukit.derive.numeric.bptt import backward
from grukit.derive.numeric.evaluate import engine, forward

SIZES = [(1, 100, 8, 16), (32, 64, 32, 32), (32, 64, 128, 128), (32, 64, 256, 256), (32, 32, 512, 512),
         (32, 100, 128, 256)]
QUICK_SIZES = [(1, 100, 8, 16), (32, 64, 32, 32)]
NETWORK_SIZE, QUICK_NETWORK_SIZE = (32, 64, 128, 128), (8, 16, 32, 32)
ROUNDS, QUICK_ROUNDS, NUMPY_ROUNDS = 7, 3, 2
MIN_SAMPLE_S = 0.003  # a timed sample repeats the call until it lasts this long
CONVENTION = "pytorch"  # the same function in every system: reset after, two biases, torch's layout
ROOT = Path(__file__).resolve().parents[2]
REPORT = ROOT / "docs" / "benchmarks.md"


def thread_count() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def child_environment(threads: int) -> dict:
    env = dict(os.environ)
    for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
        env[name] = str(threads)
    env.update(OPENBLAS_THREAD_TIMEOUT="4", GOMP_SPINCOUNT="10000", KERAS_BACKEND="torch",
               GRUKIT_BENCH_CHILD="1")
    return env


def main(quick: bool = False, as_json: bool = False, output: str | None = None, plot: bool = True,
         threads: int | None = None, render: str | None = None) -> int:
    """Run the benchmark in a child process with the thread settings in its environment; its
    options travel as JSON in ``GRUKIT_BENCH_OPTIONS`` (only the CLI parses arguments)."""
    if render is None:
        require_torch()
    threads = threads or thread_count()
    env = child_environment(threads)
    env["GRUKIT_BENCH_OPTIONS"] = json.dumps({"quick": quick, "as_json": as_json, "output": output, "plot": plot,
                                              "threads": threads, "render": render})
    return subprocess.run([sys.executable, "-m", "grukit.codegen.bench.run"], env=env).returncode


def require_torch() -> None:
    """PyTorch is the reference every ratio is taken against: say so before the run, not after it."""
    try:
        importlib.import_module("torch")
    except ImportError as exc:
        raise GrukitError(f"bench: needs PyTorch, which does not import here ({exc}); install the oracle extra: "
                          f"pip install torch==2.13.0 && pip install -e '.[oracle]'") from None


# --- timing ---------------------------------------------------------------------------------------

def sample(fn) -> float:
    """Seconds per call in a steady state: one untimed call (the system before this one has just
    used the caches and malloc's free memory), then the call repeated until the sample lasts
    MIN_SAMPLE_S."""
    fn()
    n, start = 0, time.perf_counter()
    while True:
        fn()
        n += 1
        elapsed = time.perf_counter() - start
        if elapsed >= MIN_SAMPLE_S:
            return elapsed / n


def rounds(systems: dict, count: int, warm: bool = True, repeat: bool | None = None,
           cpu: dict[str, list[float]] | None = None) -> dict[str, list[float]]:
    """Every system once per round, the order rotating; a short pause lets spinning pools settle.
    ``warm``: one untimed call of each first; ``repeat`` (default: as ``warm``): a sample repeats the
    call (:func:`sample`), else it is one call. ``cpu``: filled with each sample's CPU seconds (every
    thread of the process), which shows what a system's threads spend besides the wall time."""
    repeat = warm if repeat is None else repeat
    names = list(systems)
    times = {name: [] for name in names}
    for name in names * warm:  # warm-up: compile, allocate, page in
        systems[name]()
    for r in range(count):
        order = names[r % len(names):] + names[:r % len(names)]
        for name in order:
            time.sleep(0.01)
            start = time.process_time()
            times[name].append(sample(systems[name]) if repeat else _once(systems[name]))
            if cpu is not None:
                cpu.setdefault(name, []).append(time.process_time() - start)
    return times


def ratio(times: dict, slow: str, fast: str) -> float | None:
    """The median of per-round ratios slow/fast (how many times faster ``fast`` is)."""
    if slow not in times or fast not in times:
        return None
    pairs = list(zip(times[slow], times[fast]))
    return statistics.median(a / b for a, b in pairs) if pairs else None


def flops(B, T, D, H, mode: str) -> float:
    per = 6 * T * B * H * (D + H)
    return per if mode == "forward" else 3 * per


# --- the systems ----------------------------------------------------------------------------------

def torch_weights(rng, D, H, dtype):
    s = 1 / H ** 0.5
    return {"weight_ih_l0": rng.uniform(-s, s, (3 * H, D)).astype(dtype),
            "weight_hh_l0": rng.uniform(-s, s, (3 * H, H)).astype(dtype),
            "bias_ih_l0": rng.uniform(-s, s, 3 * H).astype(dtype),
            "bias_hh_l0": rng.uniform(-s, s, 3 * H).astype(dtype)}


def grukit_systems(size, dtype, w, x, h0, dh):
    B, T, D, H = size
    k = kernels.load(CONVENTION, dtype)
    packed = k.pack(w, D, H)

    def forward():
        return k.forward(x, h0, packed, save=False).h

    def train():
        return k.backward(k.forward(x, h0, packed), dh)

    return {f"grukit {dtype} forward": forward, f"grukit {dtype} train": train}


def torch_systems(size, dtype, w, x, h0, dh):
    import torch

    B, T, D, H = size
    gru = torch.nn.GRU(D, H, batch_first=True, dtype=getattr(torch, dtype))
    with torch.no_grad():
        for name, value in w.items():
            getattr(gru, name).copy_(torch.from_numpy(value))
    xt, ht, dht = torch.from_numpy(x), torch.from_numpy(h0[None]), torch.from_numpy(dh)

    def forward():
        with torch.no_grad():
            return gru(xt, ht)[0]

    def train():
        xg = xt.detach().requires_grad_()
        hg = ht.detach().requires_grad_()
        y, _ = gru(xg, hg)
        y.backward(dht)
        grads = [p.grad for p in gru.parameters()]
        gru.zero_grad(set_to_none=True)
        return grads, xg.grad, hg.grad

    return {f"torch {dtype} forward": forward, f"torch {dtype} train": train}


def ort_system(size, w, x, h0, threads):
    """ONNX Runtime's GRU (float32 only), linear_before_reset=1: PyTorch's function."""
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper

    B, T, D, H = size
    order = [1, 0, 2]  # torch blocks [r|z|n] -> ONNX [z|r|h]

    def blocks(a):
        return np.concatenate([a[i * H:(i + 1) * H] for i in order])

    W = blocks(w["weight_ih_l0"])[None]
    R = blocks(w["weight_hh_l0"])[None]
    Bias = np.concatenate([blocks(w["bias_ih_l0"]), blocks(w["bias_hh_l0"])])[None]
    inits = [numpy_helper.from_array(W, "W"), numpy_helper.from_array(R, "R"), numpy_helper.from_array(Bias, "B")]
    node = helper.make_node("GRU", ["X", "W", "R", "B", "", "initial_h"], ["Y"], hidden_size=H,
                            linear_before_reset=1)
    graph = helper.make_graph(  # time-major (ONNX Runtime's CPU GRU has no batch-first layout)
        [node], "gru", [helper.make_tensor_value_info("X", TensorProto.FLOAT, [T, B, D]),
                        helper.make_tensor_value_info("initial_h", TensorProto.FLOAT, [1, B, H])],
        [helper.make_tensor_value_info("Y", TensorProto.FLOAT, [T, 1, B, H])], initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 14)])
    model.ir_version = 7
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    # ONNX Runtime's idle workers spin after each call by default and take the second core from the
    # system timed next in the round (measured: grukit's forward at (32,64,256,256) 11.9 ms instead of
    # 6.9 ms right after an ONNX Runtime call); a user's process that does anything else sets this too.
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    session = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    # the inputs handed over time-major, transposed outside the timing (grukit transposes inside)
    feed = {"X": np.ascontiguousarray(x.transpose(1, 0, 2)), "initial_h": np.ascontiguousarray(h0[None])}

    def forward():
        return session.run(["Y"], feed)[0]

    return {"onnxruntime float32 forward": forward}


def numpy_engine_systems(size, w, x, h0, dh):
    """grukit's numpy engine (float64), one sequence at a time."""

    B, T, D, H = size
    conv = PRESETS[CONVENTION]
    eqs, eng = cell_equations(conv), engine("numpy")
    params = LAYOUTS[conv.layout].unpack(conv, {k: v.astype(np.float64) for k, v in w.items()})
    x64, h64, dh64 = x.astype(np.float64), h0.astype(np.float64), dh.astype(np.float64)

    def run(train):
        for b in range(B):
            traces = forward(eqs, params, x64[b], h64[b], eng)
            if train:
                backward(conv, params, traces, LossHead("weighted_sum", tuple(range(T)), tuple(dh64[b])), eng)

    return {"numpy engine float64 forward": lambda: run(False), "numpy engine float64 train": lambda: run(True)}


def network_systems(size, threads: int) -> dict:
    """Two bidirectional layers of the convention over a padded batch (lengths from T/2 to T, as
    PyTorch packs them), trained -- forward, then every gradient of a weighted sum of the outputs --
    on the float64 kernels (:mod:`grukit.codegen.kernels.network`, the two directions of a layer in
    two threads where the kernels allow it and the run has two) and on the NumPy engine's walk of
    the same network cell by cell and step by step (:mod:`grukit.derive.layers.run`)."""
    B, T, D, H = size
    rng = np.random.default_rng(1)
    conv, s = PRESETS[CONVENTION], 1 / H ** 0.5

    def cell(width, direction):
        return Cell(conv, {p: rng.uniform(-s, s, conv.param_shape(p, width, H)) for p in conv.parameters()},
                    direction)

    net = Network("pytorch", [Layer((cell(D, "forward"), cell(D, "reverse"))),
                              Layer((cell(2 * H, "forward"), cell(2 * H, "reverse")))])
    x, h0 = rng.uniform(-1, 1, (B, T, D)), [rng.uniform(-1, 1, (B, H)) for _ in range(4)]
    valid = (np.arange(T)[None, :] < rng.integers(T // 2, T + 1, B)[:, None]).astype(int)
    G = rng.uniform(-1, 1, (B, T, 2 * H))
    ours, eng = NetworkKernels(net, "float64", threads=threads > 1), BatchedNumpyEngine()

    def grukit_train():
        return ours.backward(ours.forward(x, h0, valid), G)

    def numpy_train():
        run = run_network(net, x, h0, valid, eng)
        return backward_network(run, unarrange_outputs(net, G), [None] * 4)

    return {"grukit network float64 train": grukit_train, "numpy engine network float64 train": numpy_train}


def module_systems(size, dtype, w, x, h0, dh) -> dict:
    """A training step of ``grukit.GRU`` and of ``nn.GRU`` (:mod:`grukit.codegen.bench.pytorch`)."""
    from grukit.codegen.bench.pytorch import module_systems as steps

    return steps(size, dtype, w, x, h0, dh)


SYSTEMS = [grukit_systems, torch_systems, module_systems]
"""The systems timed at every size in both dtypes: each a function ``(size, dtype, weights, x, h0, dh)
-> {"<system> <dtype> <mode>": callable}`` (mode ``forward`` or ``train``; ``weights`` PyTorch's
arrays). A later system -- grukit's ``GRU`` module's training step, say -- is one more function here
and its ratio one more line of :data:`COMPARISONS`; the report lists every ratio it finds."""

COMPARISONS = [
    ("grukit {dtype} {mode}", "torch {dtype} {mode}"),
    ("grukit {dtype} {mode}", "onnxruntime {dtype} {mode}"),
    ("grukit {dtype} {mode}", "numpy engine float64 {mode}"),
    ("grukit GRU {dtype} train step", "torch nn.GRU {dtype} train step"),
]
"""(system, peer) name templates of the ratios taken at every size: how many times faster the system
is than its peer, the median of the per-round ratios (a pair is skipped where either was not timed)."""


# --- the measurements that explain the numbers ------------------------------------------------------

def gemm_peak(dtype: str, n: int) -> float:
    """GFLOP/s of an n x n x n GEMM through SciPy's BLAS (the library Numba's ``np.dot`` calls, with the
    run's threads) on Fortran-ordered operands, as BLAS takes them (C-ordered ones are copied first,
    which shows about half the rate): best of 5."""
    from scipy.linalg import blas

    gemm = blas.sgemm if dtype == "float32" else blas.dgemm
    rng = np.random.default_rng(0)
    a, b = (np.asfortranarray(rng.random((n, n)), dtype=dtype) for _ in range(2))
    c = np.zeros((n, n), dtype, order="F")
    gemm(1.0, a, b, beta=0.0, c=c, overwrite_c=True)
    best = min(_once(lambda: gemm(1.0, a, b, beta=0.0, c=c, overwrite_c=True)) for _ in range(5))
    return 2 * n ** 3 / best / 1e9


def _once(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def breakdown(size, dtype: str, forward_s: float, train_s: float) -> dict:
    """Where the time goes: the per-step recurrent GEMMs and the big GEMMs over all T*B rows, timed
    alone through the same BLAS calls with the same thread settings as inside the kernels (Numba's
    np.dot per step, NumPy's np.dot before and after the time loop); what is left is the fused
    pointwise loops (and call overhead)."""
    import numba

    @numba.njit
    def steps(h, W, out, T):
        for _ in range(T):
            np.dot(h, W, out)

    @numba.njit
    def steps_t(d, W, out, T):
        for _ in range(T):
            np.dot(d, W.T, out)

    B, T, D, H = size
    rng = np.random.default_rng(0)
    h, W, g = rng.random((B, H)).astype(dtype), rng.random((H, 3 * H)).astype(dtype), np.empty((B, 3 * H), dtype)
    d, gh = rng.random((B, 3 * H)).astype(dtype), np.empty((B, H), dtype)
    X, WX = rng.random((T * B, D)).astype(dtype), rng.random((D, 3 * H)).astype(dtype)
    DA, HS = rng.random((T * B, 3 * H)).astype(dtype), rng.random((T * B, H)).astype(dtype)

    def big_forward():
        np.dot(X, WX)

    def big_backward():
        np.dot(DA, WX.T)
        np.dot(X.T, DA)
        np.dot(HS.T, DA)

    with kernels.pinned_threads(B, T, D, H):
        steps(h, W, g, 1)
        steps_t(d, W, gh, 1)
        step_fwd = statistics.median(_once(lambda: steps(h, W, g, T)) for _ in range(5))
        step_bwd = statistics.median(_once(lambda: steps_t(d, W, gh, T)) for _ in range(5))
        big_fwd = statistics.median(_once(big_forward) for _ in range(5))
        big_bwd = statistics.median(_once(big_backward) for _ in range(5))
    return {
        "step_gemm_forward_us": step_fwd / T * 1e6,
        "step_gemm_backward_us": step_bwd / T * 1e6,
        "step_gemm_gflops": 2 * B * H * 3 * H / (step_fwd / T) / 1e9,
        "big_gemms_ms": (big_fwd + big_bwd) * 1e3,
        "big_gemm_gflops": 2 * T * B * 3 * H * (2 * D + H) / (big_fwd + big_bwd) / 1e9,
        "forward_pointwise_and_rest_us": (forward_s - step_fwd - big_fwd) / T * 1e6,
        "train_pointwise_and_rest_us": (train_s - step_fwd - step_bwd - big_fwd - big_bwd) / T * 1e6,
    }


def compile_times(dtype: str) -> dict:
    """Cold compile (a fresh Numba cache) of the forward and backward kernels, then a second fresh
    process importing them from the cache and making its first call."""
    code = (
        "import time; t0 = time.perf_counter()\n"
        "import numpy as np\n"
        "from grukit import kernels\n"
        f"k = kernels.load({CONVENTION!r}, {dtype!r}); t1 = time.perf_counter()\n"
        "B, T, D, H = 2, 3, 4, 5\n"
        "w = {'weight_ih_l0': np.ones((3 * H, D)), 'weight_hh_l0': np.ones((3 * H, H)),\n"
        "     'bias_ih_l0': np.ones(3 * H), 'bias_hh_l0': np.ones(3 * H)}\n"
        f"w = {{n: v.astype({dtype!r}) for n, v in w.items()}}\n"
        f"x, h0 = np.ones((B, T, D), {dtype!r}), np.zeros((B, H), {dtype!r})\n"
        "f = k.forward(x, h0, w); t2 = time.perf_counter()\n"
        f"k.backward(f, np.ones((B, T, H), {dtype!r})); t3 = time.perf_counter()\n"
        "print(t1 - t0, t2 - t1, t3 - t2, t3 - t0)\n"
    )
    out = {}
    with tempfile.TemporaryDirectory() as cache:
        env = dict(os.environ, NUMBA_CACHE_DIR=cache)
        for label in ("cold", "cached"):
            text = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                                  check=True).stdout.split()
            imp, fwd, bwd, total = map(float, text)
            out[label] = {"import_s": imp, "forward_s": fwd, "backward_s": bwd, "total_s": total}
    return out


# --- the run ----------------------------------------------------------------------------------------

def run(quick: bool, threads: int, log) -> dict:
    import numba
    import torch

    torch.set_num_threads(threads)
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:
        pass
    numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))
    try:
        import onnxruntime  # noqa: F401
        have_ort = True
    except ImportError:
        have_ort = False

    sizes = QUICK_SIZES if quick else SIZES
    count = QUICK_ROUNDS if quick else ROUNDS
    result = {
        "load": {"start": os.getloadavg()},
        "machine": {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
                    "cpus": os.cpu_count(), "threads": threads, "python": platform.python_version(),
                    "numpy": np.__version__, "numba": numba.__version__, "torch": torch.__version__,
                    "onnxruntime": __import__("onnxruntime").__version__ if have_ort else None},
        "settings": {"rounds": count, "numpy_engine_rounds": NUMPY_ROUNDS, "convention": CONVENTION,
                     "peak": "scipy gemm, Fortran-ordered",
                     "quick": quick, "environment": {k: os.environ.get(k) for k in (
                         "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS",
                         "OPENBLAS_THREAD_TIMEOUT", "GOMP_SPINCOUNT")}},
        "peak": {}, "sizes": [], "compile": {},
    }
    n = 1024 if quick else 2048
    for dtype in ("float32", "float64"):
        log(f"GEMM peak {dtype} ({n}^3, Fortran-ordered, through SciPy's BLAS) ...")
        result["peak"][dtype] = gemm_peak(dtype, n)
    for size in sizes:
        B, T, D, H = size
        log(f"size B,T,D,H = {size} ...")
        rng = np.random.default_rng(0)
        entry = {"size": list(size), "times": {}, "ratios": {}, "gflops": {}, "peak_fraction": {}, "breakdown": {}}
        systems = {}
        for dtype in ("float32", "float64"):
            w = torch_weights(rng, D, H, dtype)
            x = rng.uniform(-1, 1, (B, T, D)).astype(dtype)
            h0 = rng.uniform(-1, 1, (B, H)).astype(dtype)
            dh = rng.uniform(-1, 1, (B, T, H)).astype(dtype)
            for make in SYSTEMS:
                systems |= make(size, dtype, w, x, h0, dh)
            if dtype == "float32":
                if have_ort:
                    systems |= ort_system(size, w, x, h0, threads)
                slow = numpy_engine_systems(size, w, x, h0, dh)
        times = rounds(systems, count)
        # the numpy engine (seconds per call) after the others, without a warm-up round (nothing to
        # compile); its train only where that takes minutes at most
        times |= rounds({k: v for k, v in slow.items() if k.endswith("forward")}, NUMPY_ROUNDS, warm=False)
        if statistics.median(times["numpy engine float64 forward"]) < NUMPY_TRAIN_LIMIT_S:
            times |= rounds({k: v for k, v in slow.items() if k.endswith("train")}, NUMPY_ROUNDS, warm=False)
        for name, values in times.items():
            entry["times"][name] = statistics.median(values)
            mode = "forward" if name.endswith("forward") else "train"
            entry["gflops"][name] = flops(B, T, D, H, mode) / entry["times"][name] / 1e9
            dtype = "float32" if "float32" in name else "float64"
            entry["peak_fraction"][name] = entry["gflops"][name] / result["peak"][dtype]
        for dtype in ("float32", "float64"):
            for mode in ("forward", "train"):
                for mine, peer in COMPARISONS:
                    mine, peer = mine.format(dtype=dtype, mode=mode), peer.format(dtype=dtype, mode=mode)
                    value = ratio(times, peer, mine)
                    if value is not None:
                        entry["ratios"][f"{mine} vs {peer}"] = value
            entry["breakdown"][dtype] = breakdown(size, dtype, entry["times"][f"grukit {dtype} forward"],
                                                  entry["times"][f"grukit {dtype} train"])
        entry["rounds"] = times
        result["sizes"].append(entry)
    result["network"] = network(QUICK_NETWORK_SIZE if quick else NETWORK_SIZE, threads, log)
    for dtype in ("float32", "float64"):
        log(f"compile times {dtype} (two fresh processes) ...")
        result["compile"][dtype] = compile_times(dtype)
    result["load"]["end"] = os.getloadavg()
    result["targets"] = evaluate_targets(result)
    return result


def network(size, threads: int, log) -> dict:
    """The network figure: its two systems in interleaved rounds, one call per sample (the NumPy
    engine takes seconds), after one untimed call of each; wall and CPU seconds."""
    log(f"network: two bidirectional layers, B,T,D,H = {size} ...")
    systems = network_systems(size, threads)
    cpu: dict[str, list[float]] = {}
    times = rounds(systems, NUMPY_ROUNDS + 1, warm=True, repeat=False, cpu=cpu)
    mine, peer = systems
    return {"size": list(size), "times": {k: statistics.median(v) for k, v in times.items()}, "rounds": times,
            "cpu": {k: statistics.median(v) for k, v in cpu.items()}, "ratio": ratio(times, peer, mine)}


def child(quick: bool, as_json: bool, output: str | None, plot: bool, threads: int, render: str | None) -> int:
    def log(text):
        print(text, file=sys.stderr, flush=True)

    if render:  # a saved run's numbers, judged by today's targets
        result = json.loads(Path(render).read_text())
        result["targets"] = evaluate_targets(result)
    else:
        result = run(quick, threads, log)
    output = output or ("-" if quick else str(REPORT))  # a quick run leaves the report alone
    if output != "-":
        path = Path(output)
        path.with_suffix(".json").write_text(json.dumps(result, indent=1) + "\n")
        plot_name = None
        png = path.with_suffix(".png")
        # a re-rendered run keeps its plot where matplotlib is missing: the plot shows only its times
        if plot and (write_plot(result, png) or render and png.exists()):
            plot_name = png.name
        path.write_text(markdown(result, plot_name))
        log(f"wrote {path}")
    if as_json:
        print(json.dumps(result))
    else:
        for t in result["targets"]:
            vals = ", ".join(f"{v['value']:.2f}" for v in t["measured"])
            log(f"{'met   ' if t['met'] else 'MISSED'} {t['target']} (>= {t['threshold']}): {vals}")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(child(**json.loads(os.environ["GRUKIT_BENCH_OPTIONS"])))
    except (GrukitError, ImportError, OSError) as exc:  # the parent's promise holds here too: one line
        print(f"grukit: error: bench: {exc}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        sys.exit(130)

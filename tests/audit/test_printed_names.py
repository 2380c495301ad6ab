"""What printed derivations claim that is no quantity of the cell: a last-step loss through an output
layer (y-hat, the loss, dL/dW_y), the terms sheets print (1 - z, z(1 - z), ...), a 1x1 matrix as one
number, and formulas summed over the steps.

The numbers are computed here in NumPy from the independent GRU of tests/helpers/numpy_gru.py
(written from the public sources), printed at 4 decimals as a careful hand calculation would; grukit
must call each ok under the name a worked example uses.
"""
from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal

import numpy as np
import pytest
from helpers import EXAMPLES
from helpers.numpy_gru import gru_reference
from helpers.random_problems import RESET_FREE, random_problem
from helpers.random_problems import problem_yaml as random_problem_yaml

from grukit.codegen.cli.main import main
from grukit.derive.audit.audit import audit
from grukit.derive.audit.claims import load_claims
from grukit.derive.cell.presets import PRESETS

INPUTS = [[0.5, -0.3], [0.2, 0.7]]
H0 = [0.1, -0.2, 0.3]


def text(values, decimals: int = 4) -> str:
    arr = np.asarray(values, dtype=float)
    if arr.ndim == 0:
        return str(Decimal(repr(float(arr))).quantize(Decimal(1).scaleb(-decimals), rounding=ROUND_HALF_UP))
    return "[" + ", ".join(text(v, decimals) for v in arr) + "]"


def weights(name: str, seed: int) -> dict:
    conv = PRESETS[name]
    rng = np.random.default_rng(seed)
    return {p: np.round(rng.uniform(-0.9, 0.9, conv.param_shape(p, 2, 3)), 1) for p in conv.parameters()}


def problem_yaml(name: str, params: dict, loss: str) -> str:
    conv = PRESETS[name]
    lines = [f"problem:\n  convention: {name}\n  inputs: {INPUTS}\n  h0: {H0}\n  weights:\n"]
    lines += [f"    {conv.key(p)}: {np.asarray(v).tolist()}\n" for p, v in params.items()]
    return "".join(lines) + f"  loss: {loss}\n"


def verdicts(path, problem: str, claims: dict) -> dict:
    path.write_text(problem + "claims:\n" + "".join(f"  {k}: {v}\n" for k, v in claims.items()))
    return {r.claim.name: r.verdict for r in audit(load_claims(path)).results}


def reference(name: str, params: dict) -> list[dict]:
    conv = PRESETS[name]
    arrays = {(p.role, p.gate): np.asarray(v, float) for p, v in params.items()}
    return gru_reference(conv.axes(), arrays, np.asarray(INPUTS, float), np.asarray(H0, float))


# --- a loss on the last step, through an output layer -------------------------------------------

@pytest.mark.parametrize("kind, scale", [("final_squared_error", 1.0), ("final_half_squared_error", 0.5)])
@pytest.mark.parametrize("name", ["course-notes", "d2l"])  # column and row output layers
def test_a_last_step_loss_through_an_output_layer_verifies_y_hat_the_loss_and_dL_dW_y(tmp_path, name, kind, scale):
    params = weights(name, 1)
    column = PRESETS[name].orientation == "column"
    W_y = np.array([[0.4, -0.2, 0.3], [-0.1, 0.5, 0.2]])
    W_y = W_y if column else W_y.T
    b_y, y = np.array([0.1, -0.2]), np.array([0.5, -0.3])
    h_T = reference(name, params)[-1]["h"]
    y_hat = (W_y @ h_T if column else h_T @ W_y) + b_y
    loss = scale * np.sum((y - y_hat) ** 2)
    d_y_hat = 2 * scale * (y_hat - y)
    d_W_y = np.outer(d_y_hat, h_T) if column else np.outer(h_T, d_y_hat)
    problem = problem_yaml(name, params, f"{{type: {kind}, W_o: {W_y.tolist()}, b_o: {b_y.tolist()}, "
                                         f"target: {y.tolist()}}}")
    claims = {"y_hat[2]": text(y_hat), "loss": text(loss), "dL/dy_hat[2]": text(d_y_hat),
              "dL/dW_y": text(d_W_y), "dL/db_y": text(d_y_hat), '"ŷ[2]"': text(y_hat)}
    assert set(verdicts(tmp_path / "c.yaml", problem, claims).values()) == {"ok"}
    claims = {"dL/dW_y": text(d_W_y * 1.1)}
    assert verdicts(tmp_path / "c.yaml", problem, claims) == {"dL/dW_y": "wrong"}


# --- the terms sheets and notes print ------------------------------------------------------------

@pytest.mark.parametrize("name", ["course-notes", "pytorch", "homework"])  # reset before and after, scalar gates
def test_every_printed_term_is_claimable_by_its_documented_name(tmp_path, name):
    params = weights(name, 2)
    conv = PRESETS[name]
    steps = reference(name, params)
    s, h_prev = steps[1], steps[0]["h"]
    z, r, c = s["z"], s["r"], s["candidate"]
    state = conv.notation.state
    claims = {
        "1 - z[2]": 1 - z, f"(1 - z[2]) * {state}[1]": (1 - z) * h_prev, f"z[2] ⊙ {state}[1]": z * h_prev,
        "z[2] * h~[2]": z * c, "(1 - z[2]) candidate[2]": (1 - z) * c, f"h~[2] - {state}[1]": c - h_prev,
        f"{state}[1] - h~[2]": h_prev - c, "z[2](1 - z[2])": z * (1 - z), "1 - h~[2]^2": 1 - c ** 2,
        "r[2] (1 - r[2])": r * (1 - r),
    }
    if conv.reset == "after":
        U_h = np.asarray(next(v for p, v in params.items() if (p.role, p.gate) == ("recurrent_weight", "h")), float)
        b_hh = np.asarray(next(v for p, v in params.items() if (p.role, p.gate) == ("recurrent_bias", "h")), float)
        claims["r[2] ⊙ a_hh[2]"] = r * (U_h @ h_prev + b_hh)
    problem = problem_yaml(name, params, f"{{type: weighted_sum, G: {[[1.0, 0.5, -0.5]] * 2}}}")
    found = verdicts(tmp_path / "c.yaml", problem, {f'"{k}"': text(v) for k, v in claims.items()})
    assert found == {k: "ok" for k in claims}


def test_the_terms_are_listed_by_grukit_names(capsys):
    assert main(["names", str(EXAMPLES / "course-notes.yaml")]) == 0
    out = capsys.readouterr().out
    for name in ("1 - z[1]", "(1 - z[1]) h[0]", "z[1] candidate[1]", "candidate[1] - h[0]", "z[1] (1 - z[1])",
                 "1 - candidate[1]^2", "r[1] (1 - r[1])"):
        assert f"\n{name} " in out, name


# --- a 1x1 matrix as one number ------------------------------------------------------------------

@pytest.mark.parametrize("written", ["{v}", "[{v}]", "[[{v}]]", '"{v}"'])
def test_a_1x1_matrix_is_claimed_as_a_single_number(tmp_path, written):
    name = "course-notes"
    conv = PRESETS[name]
    params = {p: np.full(conv.param_shape(p, 1, 1), 0.3 if p.gate == "z" else -0.4) for p in conv.parameters()}
    x, h0, G = np.array([[0.5], [-0.2]]), np.array([0.1]), np.array([[1.0], [0.5]])
    arrays = {(p.role, p.gate): v for p, v in params.items()}
    steps = gru_reference(conv.axes(), arrays, x, h0)
    eps, loss = 1e-6, lambda s: sum(float(g @ st["h"]) for g, st in zip(G, s))
    bumped = dict(arrays)
    grad = []
    for sign in (1, -1):  # central difference in the 1x1 U_z
        bumped[("recurrent_weight", "z")] = arrays[("recurrent_weight", "z")] + sign * eps
        grad.append(loss(gru_reference(conv.axes(), bumped, x, h0)))
    d_U_z = (grad[0] - grad[1]) / (2 * eps)
    problem = (f"problem:\n  convention: {name}\n  inputs: {x.tolist()}\n  h0: {h0.tolist()}\n  weights:\n"
               + "".join(f"    {conv.key(p)}: {v.tolist()}\n" for p, v in params.items())
               + f"  loss: {{type: weighted_sum, G: {G.tolist()}}}\n")
    claims = {"dL/dU_z": written.format(v=text(d_U_z)), "h[2]": text(steps[1]["h"][0])}
    assert verdicts(tmp_path / "c.yaml", problem, claims) == {"dL/dU_z": "ok", "h[2]": "ok"}


# --- formulas about one step, summed over t --------------------------------------------------------

def test_formula_claims_summed_over_the_steps(tmp_path):
    (tmp_path / "course-notes.yaml").write_bytes((EXAMPLES / "course-notes.yaml").read_bytes())
    (tmp_path / "f.yaml").write_text(
        "problem: course-notes.yaml\nclaims:\n"
        '  dL/db_h: "sum_t delta_h[t]"\n'
        '  dL/dW_z: "Σ_t delta_z[t] x[t]^T"\n'
        '  dL/dU_z[t]: "delta_z h[t-1]^T"\n'
        '  dL/db_r|t: "dL/da_r[t]"\n'
        '  dL/dW_h: "\\\\sum_{t=1}^{T} delta_z x^T"\n')
    report = {r.claim.name: r.verdict for r in audit(load_claims(tmp_path / "f.yaml")).results}
    assert report == {"dL/db_h": "ok", "dL/dW_z": "ok", "dL/dU_z[t]": "ok", "dL/db_r|t": "ok", "dL/dW_h": "wrong"}


def test_a_sum_over_t_of_a_quantity_is_one_line(tmp_path, capsys):
    (tmp_path / "course-notes.yaml").write_bytes((EXAMPLES / "course-notes.yaml").read_bytes())
    (tmp_path / "f.yaml").write_text('problem: course-notes.yaml\nclaims:\n  dL/dz[t]: "sum_t dL/dh * (h_prev - c)"\n')
    assert main(["verify", str(tmp_path / "f.yaml")]) == 2
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1 and "claims.dL/dz[t]" in err and "parameter gradient" in err


# --- a cell without a reset gate -------------------------------------------------------------------

@pytest.mark.parametrize("name", sorted(RESET_FREE))
def test_a_cell_without_a_reset_gate_is_audited(tmp_path, name):
    """Its forward numbers from the independent NumPy GRU verify; a wrong state is wrong and diagnosed."""
    p = random_problem(name, 2, 3, 3, seed=5)
    conv = p.convention
    arrays = {(q.role, q.gate): np.asarray(v, float) for q, v in p.params.items()}
    steps = gru_reference(conv.axes(), arrays, np.asarray(p.inputs, float), np.asarray(p.h0, float))
    claims = {f"{key}[{t}]": text(s[key]) for t, s in enumerate(steps, start=1) for key in ("z", "candidate", "h")}
    path = tmp_path / "c.yaml"
    path.write_text(random_problem_yaml(p).replace("\n", "\n  ").join(["problem:\n  ", "\n"]) + "claims:\n"
                    + "".join(f"  {k}: {v}\n" for k, v in claims.items()))
    assert {r.verdict for r in audit(load_claims(path)).results} == {"ok"}
    claims["h[2]"] = text(steps[1]["h"] + 0.05)
    path.write_text(path.read_text().split("claims:\n")[0] + "claims:\n"
                    + "".join(f"  {k}: {v}\n" for k, v in claims.items()))
    wrong = {r.claim.name: r for r in audit(load_claims(path)).results if r.verdict == "wrong"}
    assert list(wrong) == ["h[2]"] and wrong["h[2]"].diagnosis

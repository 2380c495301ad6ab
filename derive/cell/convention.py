"""A GRU convention as a value.

Every way in which published GRUs disagree is one field of :class:`Convention`. The equations
(:mod:`grukit.derive.cell.equations`), the evaluators, the gradient derivation and every emitter read
these fields; nothing else in grukit branches on a convention's name.
"""
from __future__ import annotations

import re
import string
from dataclasses import dataclass, field, replace
from fractions import Fraction

from grukit.derive.errors import GrukitError

GATES = ("z", "r", "h")
"""Internal gate ids: update gate, reset gate, candidate ("h", PyTorch's "n")."""

_ONNX_ACTIVATIONS = {
    "relu": "max(0, a) (ONNX Relu)",
    "tanh": "tanh(a) (ONNX Tanh)",
    "affine": "alpha a + beta (ONNX Affine)",
    "leaky_relu": "a if a >= 0 else alpha a (ONNX LeakyRelu, alpha 0.01 by default)",
    "thresholded_relu": "a if a > alpha else 0 (ONNX ThresholdedRelu)",
    "scaled_tanh": "alpha tanh(beta a) (ONNX ScaledTanh)",
    "hard_sigmoid": "clip(alpha a + beta, 0, 1) (ONNX HardSigmoid, alpha 0.2 and beta 0.5 by default)",
    "elu": "a if a >= 0 else alpha (exp(a) - 1) (ONNX Elu, alpha 1 by default)",
    "softsign": "a / (1 + |a|) (ONNX Softsign)",
    "softplus": "log(1 + exp(a)) (ONNX Softplus)",
}
"""The activations of ONNX's GRU beyond the built-in ones (ONNX's Sigmoid is ``sigmoid``)."""

AXES: dict[str, dict[str, str]] = {
    "update_rule": {
        "z_keeps_old": "h_t = z * h_{t-1} + (1 - z) * candidate",
        "z_admits_new": "h_t = (1 - z) * h_{t-1} + z * candidate",
    },
    "reset": {
        "before": "candidate = act(W x + U (r * h_{t-1}) + b)",
        "after": "candidate = act(W x + b_i + r * (U h_{t-1} + b_h))",
        "none": "no reset gate (r = 1): candidate = act(W x + U h_{t-1} + b), as course material unrolls by hand",
    },
    "biases": {
        "none": "no biases",
        "single": "one bias per gate",
        "double": "an input and a recurrent bias per gate",
    },
    "gate_activation": {
        "sigmoid": "1 / (1 + exp(-a))",
        "hard_sigmoid_keras2": "clip(0.2 a + 0.5, 0, 1)",
        "hard_sigmoid_keras3": "clip(a / 6 + 1/2, 0, 1)",
        **_ONNX_ACTIVATIONS,
    },
    "candidate_activation": {"tanh": "tanh(a)", "linear": "a",
                             "sigmoid": "1 / (1 + exp(-a)) (ONNX Sigmoid)",
                             **{k: v for k, v in _ONNX_ACTIVATIONS.items() if k != "tanh"}},
    "orientation": {"column": "W x (W is out x in)", "row": "x W (W is in x out)"},
    "gate_width": {"vector": "one gate value per hidden unit", "scalar": "z and r are scalars shared by all units"},
    "input_form": {
        "separate": "separate input and recurrent weights",
        "concatenated": "one weight per gate acting on the concatenation [h_{t-1}, x_t]",
        "concatenated_xh": "one weight per gate acting on the concatenation [x_t, h_{t-1}]",
    },
}
"""The axes with a fixed set of values: axis -> {value: what it means}. Validation, the problem-file
reader and docs/conventions.md all read this one table."""

LAYOUT_NAMES = ("keras", "pytorch", "onnx")

ARRANGEMENT_AXES: dict[str, str] = {
    "gate_order": "the order of the three gate blocks along the packed axis of the framework arrays",
    "layout": "the framework whose packed arrays the convention reads natively",
}
"""The axes that say how the weights are stored rather than what the cell computes: axis -> meaning."""

PARAMETER_AXES: dict[str, str] = {
    "gate_activation_alpha": "alpha of the gate activation (affine, leaky_relu, thresholded_relu, scaled_tanh, "
                             "hard_sigmoid, elu); none: the function's default",
    "gate_activation_beta": "beta of the gate activation (affine, scaled_tanh, hard_sigmoid); none: the default",
    "candidate_activation_alpha": "alpha of the candidate activation; none: the function's default",
    "candidate_activation_beta": "beta of the candidate activation; none: the function's default",
    "clip": "a bound c > 0: every pre-activation (z, r and the candidate's) is clipped to [-c, c] before its "
            "activation (ONNX's clip attribute); none: no clipping",
}
"""The axes holding a number (or none): axis -> meaning. ONNX's ``activation_alpha``/``activation_beta``
and ``clip`` attributes, one value per cell."""

ACTIVATION_PARAMETERS: dict[str, tuple[bool, bool]] = {
    "affine": (True, True), "leaky_relu": (True, False), "thresholded_relu": (True, False),
    "scaled_tanh": (True, True), "hard_sigmoid": (True, True), "elu": (True, False),
}
"""Which activations take an alpha and a beta (ONNX Runtime's NameToArgUsageMap); the rest take none."""


class ConventionError(GrukitError):
    """A convention that cannot exist (unknown value, incompatible axes)."""


TERM_ORDERS: dict[str, dict[str, str]] = {
    "update_terms": {
        "state_first": "the kept state first: (1 - z) h_{t-1} + z h~ or z h_{t-1} + (1 - z) h~",
        "candidate_first": "the candidate first: (1 - z) n + z h_{t-1} (PyTorch, ONNX)",
    },
    "reset_product": {
        "gate_first": "r * h_{t-1}, r * (U h_{t-1} + b)",
        "state_first": "h_{t-1} * r",
    },
}
"""The order in which a source writes its terms: notation field -> {value: what it means}. Only
how the equations are printed depends on it (the sheet shows a source's equations as it wrote them);
every value and derivative is the same."""


TEX_SYMBOL_CHARACTERS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_^{}()[]',+-* ")
"""The characters a notation's TeX may hold besides the commands of :data:`TEX_SYMBOL_COMMANDS`."""
TEX_ARGUMENT_COMMANDS = frozenset((
    "tilde", "hat", "bar", "vec", "check", "breve", "dot", "ddot", "widetilde", "widehat", "overline",
    "underline", "mathbf", "boldsymbol", "mathrm", "mathit", "mathsf", "mathcal", "mathbb"))
"""The accents and math fonts a notation's TeX may use (each takes the next symbol or group)."""
TEX_SYMBOL_COMMANDS = TEX_ARGUMENT_COMMANDS | frozenset((
    "alpha", "beta", "gamma", "delta", "epsilon", "varepsilon", "zeta", "eta", "theta", "vartheta", "iota",
    "kappa", "lambda", "mu", "nu", "xi", "pi", "varpi", "rho", "varrho", "sigma", "varsigma", "tau", "upsilon",
    "phi", "varphi", "chi", "psi", "omega", "Gamma", "Delta", "Theta", "Lambda", "Xi", "Pi", "Sigma", "Upsilon",
    "Phi", "Psi", "Omega", "prime", "ell"))
r"""Every TeX command a notation may use: accents, math fonts, the Greek letters, ``\prime``, ``\ell``."""
TEX_SYMBOL_LENGTH = 64
"""The longest a notation's TeX (a pattern once its gate letter is in) may be."""
_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]*")
NAME_LENGTH = 32
"""The longest a parameter's or the state's name in problem files may be."""
_GATE_LETTER = re.compile(r"[A-Za-z0-9]{1,4}")
_ROLES = ("input_weight", "recurrent_weight", "input_bias", "recurrent_bias")


def _shown(value) -> str:
    """A value quoted for an error line: as written when printable, else Python's escapes; cut short."""
    text = f"'{value}'" if isinstance(value, str) and value.isprintable() else repr(value)
    return text if len(text) <= 44 else text[:40] + "...'"


def tex_symbol_problem(tex: str) -> str | None:
    r"""What keeps ``tex`` out of the TeX subset a notation may use, or None when it is in it.

    The subset: letters, digits, ``_ ^ { } ( ) [ ] ' , + - *`` and spaces, the commands of
    :data:`TEX_SYMBOL_COMMANDS` (``\tilde{h}``, ``\mathbf{W}``, ``\alpha``), braces balanced, at most
    :data:`TEX_SYMBOL_LENGTH` characters; ``^``, ``_`` and an accent or font are followed by what they
    apply to (so no ``^^`` character code can form, here or where the sheet adds ``_{t}``)."""
    if not isinstance(tex, str):
        return "expected text"
    if not tex.strip():
        return "empty"
    if len(tex) > TEX_SYMBOL_LENGTH:
        return f"longer than {TEX_SYMBOL_LENGTH} characters"
    depth, i = 0, 0

    def operand_follows(j: int) -> bool:
        rest = tex[j:].lstrip(" ")
        return bool(rest) and (rest[0].isascii() and rest[0].isalnum() or rest[0] in "{\\")

    while i < len(tex):
        ch = tex[i]
        if ch == "\\":
            m = re.match(r"[A-Za-z]*", tex[i + 1:])
            name = m.group(0)
            if not name:
                after = repr(tex[i + 1]) if i + 1 < len(tex) else "the end"
                return (f"\\ before {after} is not allowed "
                        "(only commands such as \\alpha, \\tilde, \\mathbf)")
            if name not in TEX_SYMBOL_COMMANDS:
                return (f"\\{name[:20]} is not an allowed command (allowed: accents and fonts such as \\tilde, "
                        "\\hat, \\bar, \\mathbf, \\boldsymbol, \\mathrm, the Greek letters, \\prime, \\ell)")
            i += 1 + len(name)
            if name in TEX_ARGUMENT_COMMANDS and not operand_follows(i):
                return f"\\{name} needs a symbol or a {{group}} after it"
            continue
        if ch not in TEX_SYMBOL_CHARACTERS:
            return (f"character {ch!r} is not allowed (a symbol is letters, digits, _ ^ {{ }} ( ) [ ] ' , + - * "
                    "and commands such as \\tilde, \\mathbf, \\alpha)")
        if ch == "^" and tex[i + 1:i + 2] == "^":
            return "^^ (a TeX character code) is not allowed"
        if ch in "^_" and not operand_follows(i + 1):
            return f"{ch} needs a symbol or a {{group}} after it"
        if ch == "{":
            depth += 1
        elif ch == "}":
            depth -= 1
            if depth < 0:
                return "a } closes no {"
        i += 1
    if depth:
        return "unbalanced braces: a { is not closed"
    return None


def check_tex(tex, where: str) -> None:
    """``tex`` in the notation's TeX subset (:func:`tex_symbol_problem`), or the one-line error naming ``where``."""
    problem = tex_symbol_problem(tex)
    if problem is not None:
        raise ConventionError(f"{where}: {_shown(tex) + ': ' if isinstance(tex, str) else ''}{problem}")


def check_name(name, where: str) -> None:
    """A name in problem files: a letter, then letters, digits and underscores (at most :data:`NAME_LENGTH`)."""
    if not isinstance(name, str):
        raise ConventionError(f"{where}: expected text")
    if len(name) > NAME_LENGTH or not _NAME.fullmatch(name):
        raise ConventionError(f"{where}: {_shown(name)}: a name in problem files is a letter, then letters, "
                              f"digits and underscores (at most {NAME_LENGTH})")


def check_pattern(pattern, where: str) -> None:
    """A ``*_key``/``*_tex`` pattern: text whose only replacement field is ``{g}``, literal braces doubled."""
    if not isinstance(pattern, str):
        raise ConventionError(f"{where}: expected text")
    example = "'W_{{{g}}}'" if where.endswith("_tex") else "'W_{g}'"
    hint = f"write {{g}} for the gate's letter and double a literal brace, e.g. {example}"
    try:
        fields = [f for _, f, spec, conversion in string.Formatter().parse(pattern)
                  if f is not None and (f, spec, conversion) != ("g", "", None)]
    except ValueError as exc:  # a single { or }
        raise ConventionError(f"{where}: {_shown(pattern)}: {exc} ({hint})") from None
    if fields:
        field = _shown("{" + fields[0][:20] + "}")
        raise ConventionError(f"{where}: {_shown(pattern)}: {field} is not a placeholder ({hint})")


@dataclass(frozen=True)
class Notation:
    r"""How a source writes the symbols. ``{g}`` in a pattern is replaced by the gate's letter.

    ``*_key`` patterns name the weights in problem files; ``*_tex`` patterns are LaTeX. Every field is
    checked when the notation is made (a :class:`ConventionError` naming the field): a pattern's only
    placeholder is ``{g}`` (literal braces doubled); a gate letter is 1 to 4 letters or digits, each
    gate its own; a name in problem files (``*_key`` filled in, ``state``) is a letter, then letters,
    digits and underscores; a TeX symbol (``*_tex`` filled in, ``state_tex``, ``candidate_tex``,
    ``input_tex``) is in the subset of :func:`tex_symbol_problem` -- nothing else reaches a sheet.
    """

    input_weight_key: str = "W_{g}"
    input_weight_tex: str = "W_{{{g}}}"
    recurrent_weight_key: str = "U_{g}"
    recurrent_weight_tex: str = "U_{{{g}}}"
    input_bias_key: str = "b_{g}"
    input_bias_tex: str = "b_{{{g}}}"
    recurrent_bias_key: str = "b_h{g}"
    recurrent_bias_tex: str = "b_{{h{g}}}"
    gate_letters: tuple[tuple[str, str], ...] = (("z", "z"), ("r", "r"), ("h", "h"))
    state: str = "h"
    state_tex: str = "h"
    candidate_tex: str = r"\tilde{h}"
    input_tex: str = "x"
    overrides: tuple[tuple[str, str, str, str], ...] = ()
    """(role, gate, key, tex) for names that break the pattern (Cho's unsubscripted W and U)."""
    update_terms: str = "state_first"
    """Which term of the state update the source writes first (see :data:`TERM_ORDERS`)."""
    reset_product: str = "gate_first"
    """How the source writes the reset product (see :data:`TERM_ORDERS`)."""

    def __post_init__(self):
        for key, allowed in TERM_ORDERS.items():
            if getattr(self, key) not in allowed:
                raise ConventionError(f"notation.{key}: unknown value {getattr(self, key)!r} "
                                      f"(choose from {', '.join(allowed)})")
        self._check_gate_letters()
        check_name(self.state, "notation.state")
        for key in ("state_tex", "candidate_tex", "input_tex"):
            check_tex(getattr(self, key), f"notation.{key}")
        for role in _ROLES:
            for kind in ("key", "tex"):
                check_pattern(getattr(self, f"{role}_{kind}"), f"notation.{role}_{kind}")
        self._check_overrides()
        for role in _ROLES:
            names = {gate: self.name(role, gate) for gate in GATES}
            for k, (kind, check) in enumerate((("key", check_name), ("tex", check_tex))):
                seen: dict[str, str] = {}
                for gate, pair in names.items():
                    check(pair[k], f"notation.{role}_{kind}")
                    if pair[k] in seen:
                        raise ConventionError(f"notation.{role}_{kind}: gives gates {seen[pair[k]]} and {gate} the "
                                              f"same name {_shown(pair[k])} (put {{g}} in it)")
                    seen[pair[k]] = gate

    def _check_gate_letters(self) -> None:
        where = "notation.gate_letters"
        pairs = self.gate_letters
        if (not isinstance(pairs, tuple) or not all(isinstance(p, tuple) and len(p) == 2 for p in pairs)
                or sorted(g for g, _ in pairs) != sorted(GATES)):
            raise ConventionError(f"{where}: expected a letter for each of z, r, h")
        owner: dict[str, str] = {}
        for gate, letter in pairs:
            if not isinstance(letter, str) or not _GATE_LETTER.fullmatch(letter):
                raise ConventionError(f"{where}.{gate}: {_shown(letter)}: a gate's letter is 1 to 4 letters or digits")
            if letter in owner:
                raise ConventionError(f"{where}: gates {owner[letter]} and {gate} both have the letter {letter!r}; "
                                      "each gate needs its own")
            owner[letter] = gate

    def _check_overrides(self) -> None:
        for item in self.overrides:
            if not (isinstance(item, tuple) and len(item) == 4 and item[0] in _ROLES and item[1] in GATES):
                raise ConventionError(f"notation.overrides: expected (role, gate, key, tex), got {_shown(item)}")
            check_name(item[2], f"notation.overrides.{item[0]}.{item[1]}")
            check_tex(item[3], f"notation.overrides.{item[0]}.{item[1]}")

    def letter(self, gate: str) -> str:
        return dict(self.gate_letters)[gate]

    def name(self, role: str, gate: str) -> tuple[str, str]:
        """The (problem-file key, LaTeX) of the parameter with this role and gate."""
        for o_role, o_gate, key, tex in self.overrides:
            if (o_role, o_gate) == (role, gate):
                return key, tex
        g = self.letter(gate)
        return getattr(self, role + "_key").format(g=g), getattr(self, role + "_tex").format(g=g)


@dataclass(frozen=True)
class Convention:
    """Every axis along which GRU formulations differ, as plain data."""

    name: str
    description: str = ""
    source: str = ""
    update_rule: str = "z_keeps_old"
    reset: str = "before"
    biases: str = "single"
    gate_activation: str = "sigmoid"
    candidate_activation: str = "tanh"
    orientation: str = "column"
    gate_width: str = "vector"
    input_form: str = "separate"
    gate_order: tuple[str, ...] = ("z", "r", "h")  # packed order in this convention's layout files
    layout: str | None = None
    gate_activation_alpha: Fraction | None = None
    gate_activation_beta: Fraction | None = None
    candidate_activation_alpha: Fraction | None = None
    candidate_activation_beta: Fraction | None = None
    clip: Fraction | None = None
    notation: Notation = field(default_factory=Notation)

    def __post_init__(self):
        for axis, allowed in AXES.items():
            value = getattr(self, axis)
            if value not in allowed:
                raise ConventionError(
                    f"{axis}: unknown value {value!r} (choose from {', '.join(allowed)})"
                )
        if sorted(self.gate_order) != sorted(GATES):
            raise ConventionError(f"gate_order: must be a permutation of z, r, h, got {list(self.gate_order)}")
        if self.layout is not None and self.layout not in LAYOUT_NAMES:
            raise ConventionError(f"layout: unknown value {self.layout!r} (choose from {', '.join(LAYOUT_NAMES)})")
        if self.concatenated and self.reset == "after":
            raise ConventionError("reset: a weight on [h, x] needs the reset before the recurrent product")
        if self.reset == "none" and self.layout is not None:
            raise ConventionError("layout: no framework stores a GRU without a reset gate")
        if self.concatenated and self.biases == "double":
            raise ConventionError("biases: a weight on [h, x] has a single bias per gate at most")
        if self.gate_width == "scalar" and self.layout is not None:
            raise ConventionError("layout: no framework stores scalar gates")
        for axis in PARAMETER_AXES:
            value = getattr(self, axis)
            if value is not None and (isinstance(value, bool) or not isinstance(value, (int, Fraction))):
                raise ConventionError(f"{axis}: expected a number or none, got {value!r}")
        if self.clip is not None and self.clip <= 0:
            raise ConventionError(f"clip: must be positive, got {self.clip}")
        for which in ("gate_activation", "candidate_activation"):
            takes = ACTIVATION_PARAMETERS.get(getattr(self, which), (False, False))
            for param, taken in zip(("alpha", "beta"), takes):
                if getattr(self, f"{which}_{param}") is not None and not taken:
                    raise ConventionError(f"{which}_{param}: {getattr(self, which)} takes no {param}")
        keys: dict[str, Param] = {}
        for p in self.parameters():  # one name per parameter: files, sheets and kernels key on it
            other = keys.setdefault(self.key(p), p)
            if other != p:
                raise ConventionError(f"notation: {other.role} ({other.gate}) and {p.role} ({p.gate}) are both "
                                      f"named {self.key(p)!r}")

    @property
    def concatenated(self) -> bool:
        """One weight per gate on the state and the input stacked ([h, x] or [x, h])."""
        return self.input_form != "separate"

    def with_changes(self, **changes) -> "Convention":
        return replace(self, **changes)

    # --- parameters -------------------------------------------------------------------------
    @property
    def gates(self) -> tuple[str, ...]:
        """The gates the cell has: all of :data:`GATES`, without the reset gate when it has none."""
        return tuple(g for g in GATES if g != "r" or self.reset != "none")

    def parameters(self) -> tuple["Param", ...]:
        """The cell's parameters, in a fixed order (input weights, recurrent weights, biases)."""
        out = []
        for gate in self.gates:
            out.append(Param("input_weight", gate))
        if self.input_form == "separate":
            for gate in self.gates:
                out.append(Param("recurrent_weight", gate))
        if self.biases != "none":
            for gate in self.gates:
                out.append(Param("input_bias", gate))
        if self.biases == "double":
            for gate in self.gates:
                out.append(Param("recurrent_bias", gate))
        return tuple(out)

    def gate_size(self, gate: str, hidden: int) -> int:
        """Width of a gate's value: the candidate always has H units; scalar gates have one."""
        return 1 if (self.gate_width == "scalar" and gate != "h") else hidden

    def param_shape(self, param: "Param", inputs: int, hidden: int) -> tuple[int, ...]:
        """Shape of a parameter as the convention writes it (biases are flat vectors)."""
        rows = self.gate_size(param.gate, hidden)
        if param.role == "input_weight":
            cols = inputs + hidden if self.concatenated else inputs
        elif param.role == "recurrent_weight":
            cols = hidden
        else:
            return (rows,)
        return (rows, cols) if self.orientation == "column" else (cols, rows)

    def key(self, param: "Param") -> str:
        """The name of a parameter in problem files and JSON output."""
        return self.notation.name(param.role, param.gate)[0]

    def tex(self, param: "Param") -> str:
        return self.notation.name(param.role, param.gate)[1]

    def axes(self) -> dict[str, object]:
        """The convention's axes as a plain dict (for tables, YAML and JSON)."""
        out = {}
        for axis in (*AXES, *ARRANGEMENT_AXES, *PARAMETER_AXES):
            value = getattr(self, axis)
            out[axis] = list(value) if isinstance(value, tuple) else value
        return out


@dataclass(frozen=True, order=True)
class Param:
    """One parameter of the cell: its role and the gate it feeds."""

    role: str  # input_weight | recurrent_weight | input_bias | recurrent_bias
    gate: str  # z | r | h

    @property
    def is_bias(self) -> bool:
        return self.role.endswith("bias")

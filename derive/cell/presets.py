"""The built-in conventions, each with its one-line description and its source.

The facts behind each preset are checked against the real frameworks by the oracle tests
(``tests/frameworks/test_forward_oracle.py``); the paper presets follow the equations as printed.
"""
from __future__ import annotations

from grukit.derive.cell.convention import Convention, Notation

_NO_BIAS_PAPER = dict(biases="none", reset="before", orientation="column")
_TORCH_NAMES = Notation(
    input_weight_key="W_i{g}", input_weight_tex="W_{{i{g}}}",
    recurrent_weight_key="W_h{g}", recurrent_weight_tex="W_{{h{g}}}",
    input_bias_key="b_i{g}", input_bias_tex="b_{{i{g}}}",
    recurrent_bias_key="b_h{g}", recurrent_bias_tex="b_{{h{g}}}",
    gate_letters=(("z", "z"), ("r", "r"), ("h", "n")), candidate_tex="n",
    update_terms="candidate_first",  # h_t = (1 - z_t) * n_t + z_t * h_(t-1)
)
_KERAS_NAMES = Notation(
    input_bias_key="b_i{g}", input_bias_tex="b_{{i{g}}}",
    recurrent_bias_key="b_r{g}", recurrent_bias_tex="b_{{r{g}}}",
)
_ONNX_NAMES = Notation(
    input_weight_key="W_{g}", input_weight_tex="W_{{{g}}}",
    recurrent_weight_key="R_{g}", recurrent_weight_tex="R_{{{g}}}",
    input_bias_key="Wb_{g}", input_bias_tex="W_{{b{g}}}",
    recurrent_bias_key="Rb_{g}", recurrent_bias_tex="R_{{b{g}}}",
    update_terms="candidate_first",  # Ht = (1 - zt) (.) ht + zt (.) Ht-1
)
_CHO_NAMES = Notation(
    overrides=(("input_weight", "h", "W", "W"), ("recurrent_weight", "h", "U", "U")),
)

PRESETS: dict[str, Convention] = {
    c.name: c
    for c in [
        Convention(
            "cho2014", "Cho et al. 2014: z keeps the old state, reset before U, no biases",
            "Cho et al., Learning Phrase Representations using RNN Encoder-Decoder, 2014, eqs. 5-8",
            update_rule="z_keeps_old", notation=_CHO_NAMES, **_NO_BIAS_PAPER,
        ),
        Convention(
            "chung2014", "Chung et al. 2014: z admits the new state, reset before U, no biases",
            "Chung et al., Empirical Evaluation of Gated Recurrent Neural Networks, 2014, eqs. 5-8",
            update_rule="z_admits_new", notation=_CHO_NAMES, **_NO_BIAS_PAPER,
        ),
        Convention(
            "colah", "Colah's blog: one weight per gate on [h, x], z admits the new state",
            "C. Olah, Understanding LSTM Networks, 2015 (GRU figure)",
            update_rule="z_admits_new", input_form="concatenated",
            notation=Notation(overrides=(("input_weight", "h", "W", "W"),)),
            **_NO_BIAS_PAPER,
        ),
        Convention(
            "course-notes", "Course notes (seed 001): z admits the new state, one bias per gate",
            "BITS Pilani AIML ZG511 course notes, GRU numerical example",
            update_rule="z_admits_new", reset="before", biases="single", orientation="column",
        ),
        Convention(
            "homework", "Homework (seed 004): row vectors, scalar z and r, U on x, W on the state s",
            "HW 10 Question 2, GRU forward process",
            update_rule="z_keeps_old", reset="before", biases="none", orientation="row",
            gate_width="scalar",
            notation=Notation(
                input_weight_key="U_{g}", input_weight_tex="U^{{{g}}}",
                recurrent_weight_key="W_{g}", recurrent_weight_tex="W^{{{g}}}",
                state="s", state_tex="s", candidate_tex="h",
                # s_t = (1 - z) o h + z o s_(t-1);  h = tanh(x_t U^h + (s_(t-1) o r) W^h)
                update_terms="candidate_first", reset_product="state_first",
            ),
        ),
        Convention(
            "keras", "Keras 3 / tf.keras GRU (reset_after=True, the default)",
            "keras-team/keras keras/src/layers/rnn/gru.py, GRUCell.call",
            update_rule="z_keeps_old", reset="after", biases="double", orientation="row",
            layout="keras", notation=_KERAS_NAMES,
        ),
        Convention(
            "keras-reset-before", "Keras GRU with reset_after=False (one bias per gate)",
            "keras-team/keras keras/src/layers/rnn/gru.py, GRUCell.call",
            update_rule="z_keeps_old", reset="before", biases="single", orientation="row",
            layout="keras",
        ),
        Convention(
            "keras2", "Keras <= 2.2.5 default: reset before, Keras-2 hard sigmoid gates",
            "keras-team/keras 2.2.5 keras/layers/recurrent.py, GRUCell",
            update_rule="z_keeps_old", reset="before", biases="single", orientation="row",
            gate_activation="hard_sigmoid_keras2", layout="keras",
        ),
        Convention(
            "pytorch", "PyTorch nn.GRU: reset after, two biases per gate, blocks [r|z|n]",
            "torch.nn.GRU documentation, torch/nn/modules/rnn.py",
            update_rule="z_keeps_old", reset="after", biases="double", orientation="column",
            gate_order=("r", "z", "h"), layout="pytorch", notation=_TORCH_NAMES,
        ),
        Convention(
            "onnx", "ONNX GRU operator, linear_before_reset=0 (the default)",
            "onnx/onnx onnx/defs/rnn/defs.cc, GRU operator",
            update_rule="z_keeps_old", reset="before", biases="double", orientation="column",
            layout="onnx", notation=_ONNX_NAMES,
        ),
        Convention(
            "onnx-lbr1", "ONNX GRU operator, linear_before_reset=1 (what PyTorch exports)",
            "onnx/onnx onnx/defs/rnn/defs.cc, GRU operator",
            update_rule="z_keeps_old", reset="after", biases="double", orientation="column",
            layout="onnx", notation=_ONNX_NAMES,
        ),
        Convention(
            "d2l", "Dive into Deep Learning, GRU from scratch: row vectors, one bias per gate",
            "d2l.ai, section 10.2 Gated Recurrent Units",
            update_rule="z_keeps_old", reset="before", biases="single", orientation="row",
            notation=Notation(
                input_weight_key="W_x{g}", input_weight_tex="W_{{x{g}}}",
                recurrent_weight_key="W_h{g}", recurrent_weight_tex="W_{{h{g}}}",
                state_tex="H", input_tex="X", candidate_tex=r"\tilde{H}",
            ),
        ),
        Convention(
            "haiku", "DeepMind Haiku hk.GRU: z admits the new state, reset before",
            "deepmind/dm-haiku haiku/_src/recurrent.py, GRU.__call__",
            update_rule="z_admits_new", reset="before", biases="single", orientation="row",
            notation=Notation(
                input_weight_key="w_i{g}", input_weight_tex="w_{{i{g}}}",
                recurrent_weight_key="w_h{g}", recurrent_weight_tex="w_{{h{g}}}",
                gate_letters=(("z", "z"), ("r", "r"), ("h", "a")), candidate_tex="a",
            ),
        ),
    ]
}

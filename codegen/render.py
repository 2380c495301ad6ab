"""The Jinja environments every emitter renders through.

LaTeX templates use ``((* *))``, ``((( )))`` and ``((# #))`` so that TeX braces never collide with
Jinja syntax; other templates (Markdown, Python) use Jinja's defaults. Both are strict: a missing
variable is an error, not an empty string.
"""
from __future__ import annotations

import re
import unicodedata
from functools import lru_cache
from urllib.parse import quote

import jinja2

_COMMON = dict(undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True,
               keep_trailing_newline=True, autoescape=False)


TEX_TEXT_ESCAPES: dict[str, str] = {
    "\\": r"\textbackslash{}",
    "{": r"\{",
    "}": r"\}",
    "$": r"\$",
    "&": r"\&",
    "#": r"\#",
    "%": r"\%",
    "<": r"\textless{}",
    ">": r"\textgreater{}",
    "|": r"\textbar{}",
    "_": r"\texttt{\char95}",
    "^": r"\texttt{\char94}",
    "~": r"\texttt{\char126}",
    '"': r"\texttt{\char34}",
    "'": r"\texttt{\char13}",
    "`": r"\texttt{\char18}",
}
r"""Every ASCII character that pdflatex's default text font (OT1) does not print as itself, and what
prints it. ``\ { } $ & # %`` are TeX syntax; OT1 has no ``< > |`` (they come out as ``¡ ¿ —``);
``' ` "`` become curly quotes and ``~ ^ _`` accents or a rule (and :func:`escape_tex` keeps ``--``
from becoming a dash). The typewriter font (cmtt) has the straight glyphs; the TS1 (textcomp) symbols would need
bitmap fonts made at run time. ``tests/sheets/test_text.py`` puts every character through pdflatex and
pdftotext."""


TEX_MATH_CHARACTERS: dict[str, str] = {
    "×": r"\times", "·": r"\cdot", "±": r"\pm", "−": "-", "≤": r"\leq", "≥": r"\geq", "≈": r"\approx",
    "→": r"\to", "←": r"\leftarrow", "↔": r"\leftrightarrow", "⇒": r"\Rightarrow", "∂": r"\partial",
    "∞": r"\infty", "∈": r"\in", "⊙": r"\odot", "⊗": r"\otimes", "∗": r"\ast",
    "α": r"\alpha", "β": r"\beta", "γ": r"\gamma", "δ": r"\delta", "ε": r"\varepsilon", "ζ": r"\zeta",
    "η": r"\eta", "θ": r"\theta", "ι": r"\iota", "κ": r"\kappa", "λ": r"\lambda", "ν": r"\nu", "ξ": r"\xi",
    "π": r"\pi", "ρ": r"\rho", "σ": r"\sigma", "υ": r"\upsilon", "φ": r"\varphi", "χ": r"\chi",
    "ψ": r"\psi", "ω": r"\omega", "Γ": r"\Gamma", "Θ": r"\Theta", "Λ": r"\Lambda", "Ξ": r"\Xi",
    "Π": r"\Pi", "Σ": r"\Sigma", "Υ": r"\Upsilon", "Φ": r"\Phi", "Ψ": r"\Psi",
}
"""Symbols a GRU's description may name that pdflatex's text fonts lack (``σ``, ``⊙``, ``≤`` stop
the run; ``×`` comes out as another letter): set as math, each checked to read back as itself."""


UNPRINTED_CATEGORIES = ("Cc", "Cf", "Cs")
"""The Unicode categories user text loses before it is set: control characters (TeX refuses them; a
sheet's number tokens are made of two), format characters (right-to-left overrides, zero-width
joiners: they make text read other than it is) and lone surrogates (an undecodable file name; they
cannot be written as UTF-8). Whitespace among them (tab, newline) becomes a space first."""


def plain_text(text) -> str:
    """``text`` as one line of printed characters: whitespace runs as one space (kept at either end),
    the characters of :data:`UNPRINTED_CATEGORIES` dropped."""
    text = str(text)
    body = "".join(ch for ch in " ".join(text.split()) if unicodedata.category(ch) not in UNPRINTED_CATEGORIES)
    return (" " if text[:1].isspace() else "") + body + (" " if text[-1:].isspace() and body else "")


def escape_tex(text) -> str:
    """User text made safe for LaTeX: every special character escaped, a hyphen before another
    hyphen kept apart (``--`` and ``---`` would print as dashes), the symbols of
    :data:`TEX_MATH_CHARACTERS` as math, newlines as spaces, control and format characters dropped
    (:func:`plain_text`)."""
    text = " ".join(plain_text(text).split())

    def one(i: int, ch: str) -> str:
        if ch in TEX_TEXT_ESCAPES:
            return TEX_TEXT_ESCAPES[ch]
        if ch in TEX_MATH_CHARACTERS:
            return r"\ensuremath{%s}" % TEX_MATH_CHARACTERS[ch]
        return "-{}" if ch == "-" and text[i + 1:i + 2] == "-" else ch

    return "".join(one(i, ch) for i, ch in enumerate(text))


MD_INLINE_SPECIAL = "\\`*_{}[]<>#|$~&"
"""The characters Markdown (CommonMark/GitHub, with ``$`` math) reads as syntax anywhere in a line:
escapes, code, emphasis, links and images (``!`` and ``(`` only act after ``[``/``]``), HTML and
entities, headings, tables, math, strikethrough."""
_MD_SPECIAL = re.compile("([%s])" % re.escape(MD_INLINE_SPECIAL))
_MD_LINE_START = re.compile(r"^(\d+)([.)])|^([-+=>])")


def escape_md(text) -> str:
    """User text made safe for Markdown (and kept out of its math); one space kept at either end.

    Inline syntax is escaped everywhere; a list marker (``-``, ``+``, ``1.``, ``1)``), a setext
    underline (``=``) or a quote (``>``) only where the text starts, the one place it can start a
    line (the text is joined into one line). Control and format characters are dropped
    (:func:`plain_text`): ``<``, ``>`` and ``&`` are escaped, so no HTML tag or entity forms."""
    text = plain_text(text)
    body = _MD_SPECIAL.sub(r"\\\1", " ".join(text.split()))
    body = _MD_LINE_START.sub(lambda m: m.group(1) + "\\" + m.group(2) if m.group(1) else "\\" + m.group(3), body)
    return (" " if text[:1].isspace() else "") + body + (" " if text[-1:].isspace() and body else "")


def escape_md_code(text, table: bool = False) -> str:
    """User text as a Markdown code span (`` `name` ``), backticks included. Backslashes do not escape
    inside a code span, so the text is one line (a blank line would end the span's paragraph and let
    what follows be HTML), a backtick (which would close the span) is written as ``'``, and in a table
    cell ``|`` as ``\\|`` (GitHub splits cells at a bare ``|`` even inside code). Text holding ``<``,
    ``>`` or ``&`` is not set as code but as escaped text (:func:`escape_md`): no HTML tag or entity
    of the user's text is ever in the Markdown, even one a code span would keep from being read."""
    body = " ".join(plain_text(text).split()).replace("`", "'")
    if not body or any(ch in body for ch in "<>&"):
        return escape_md(body)
    return "`" + (body.replace("|", "\\|") if table else body) + "`"


def escape_md_comment(text) -> str:
    """User text for the inside of an HTML comment (``<!-- ... -->``): one line, and no ``--`` left
    (``-->`` and ``--!>`` end a comment; ``---`` would leave one after a single replacement)."""
    body = " ".join(plain_text(text).split())
    while "--" in body:
        body = body.replace("--", "- -")
    return body


def escape_md_url(text) -> str:
    """User text as (part of) a link's destination: percent-encoded, so no space, parenthesis,
    ``<``, ``>`` or quote ends the link (a file name in the gallery's links)."""
    return quote(plain_text(text).strip(), safe="")


@lru_cache(maxsize=None)
def environment(kind: str) -> jinja2.Environment:
    loader = jinja2.PackageLoader("grukit.codegen", "templates")
    if kind == "latex":
        env = jinja2.Environment(
            loader=loader, block_start_string="((*", block_end_string="*))",
            variable_start_string="(((", variable_end_string=")))",
            comment_start_string="((#", comment_end_string="#))", **_COMMON)
    else:
        env = jinja2.Environment(loader=loader, **_COMMON)
    env.filters["tex"] = escape_tex
    env.filters["md"] = escape_md
    env.filters["md_code"] = escape_md_code
    env.filters["md_comment"] = escape_md_comment
    env.filters["md_url"] = escape_md_url
    return env


def render(template: str, **context) -> str:
    kind = "latex" if template.endswith(".tex.j2") else "text"
    return environment(kind).get_template(template).render(**context)

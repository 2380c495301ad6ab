"""The Jinja environments every emitter renders through.

LaTeX templates use ``((* *))``, ``((( )))`` and ``((# #))`` so that TeX braces never collide with
Jinja syntax; other templates (Markdown, Python) use Jinja's defaults. Both are strict: a missing
variable is an error, not an empty string.
"""
from __future__ import annotations

import re
from functools import lru_cache

import jinja2

_COMMON = dict(undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True,
               keep_trailing_newline=True, autoescape=False)


_TEX_SPECIAL = {
    "\\": r"\textbackslash{}", "{": r"\{", "}": r"\}", "$": r"\$", "&": r"\&", "#": r"\#",
    "%": r"\%", "_": r"\_", "^": r"\textasciicircum{}", "~": r"\textasciitilde{}",
}


def escape_tex(text) -> str:
    """User text made safe for LaTeX: every special character escaped, newlines as spaces."""
    return "".join(_TEX_SPECIAL.get(ch, ch) for ch in " ".join(str(text).split()))


_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]<>#|$~])")


def escape_md(text) -> str:
    """User text made safe for Markdown (and kept out of its math); one space kept at either end."""
    text = str(text)
    body = _MD_SPECIAL.sub(r"\\\1", " ".join(text.split()))
    return (" " if text[:1].isspace() else "") + body + (" " if text[-1:].isspace() and body else "")


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
    return env


def render(template: str, **context) -> str:
    kind = "latex" if template.endswith(".tex.j2") else "text"
    return environment(kind).get_template(template).render(**context)

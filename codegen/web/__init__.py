"""The local web page of ``grukit serve``: a student chooses an exercise, types the numbers of a hand
calculation entry by entry, and sees each one judged (``verify``) with the sheet's worked step beside
a wrong one; two conventions side by side (``compare``). Flask, Jinja templates and KaTeX served from
the package itself.

May import: derive/, codegen's shared printing (render, output, latex, docs), codegen.sheets."""

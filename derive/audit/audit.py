"""An audit of a claims file: every claim's verdict, then what explains each wrong one.

:mod:`grukit.derive.audit.verify` gives the verdicts, :mod:`grukit.derive.audit.diagnose` the diagnoses; this
is the one entry point ``grukit verify`` and the tests call.
"""
from __future__ import annotations

from grukit.derive.audit.claims import ClaimsFile
from grukit.derive.audit.diagnose import diagnose_wrong
from grukit.derive.audit.verify import Audit, verdicts


def audit(cf: ClaimsFile, diagnose: bool = True) -> Audit:
    """Every claim's verdict and, with ``diagnose``, the known mistakes that reproduce each wrong one."""
    report = verdicts(cf)
    if diagnose:
        diagnose_wrong(report)
    return report

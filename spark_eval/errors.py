"""The one base of every error the harness reports in one line and exits 2 on (no traceback)."""
from __future__ import annotations


class UserError(Exception):
    """Bad input or a state the user can fix: the message is one line naming the fix."""

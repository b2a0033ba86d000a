"""Every exception type bidsapp raises for the user (each becomes one line and an exit code in the CLI).

Numerical code in ``bidsapp.core`` raises plain ``ValueError`` naming the offending value; the command
line turns these into :class:`InputError` lines naming the run.
"""

from __future__ import annotations


class UsageError(ValueError):
    """Invalid command line or configuration (exit code 2, or 17 for the analysis level)."""

    def __init__(self, message: str, code: int = 2):
        super().__init__(message)
        self.code = code


class InputError(ValueError):
    """An input problem reported to the user as one line, with an exit code (66: missing input)."""

    def __init__(self, message: str, code: int = 66):
        super().__init__(message)
        self.code = code


class NameTaken(ValueError):
    """Outputs of this name already hold another configuration (``--replace-outputs`` or ``--desc``)."""


class WorkFolderBusy(Exception):
    """The given ``--work-dir`` is in use by another invocation."""


class Interrupted(BaseException):  # noqa: N818 - like KeyboardInterrupt, nothing may swallow it
    """The invocation was stopped by a signal (SIGINT, SIGTERM, SIGHUP); ``work`` is the work folder kept."""

    def __init__(self, signum: int):
        super().__init__(signum)
        self.signum = signum
        self.work = None

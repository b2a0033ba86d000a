"""The environment nipype's batch plugins (SLURM, SGE, PBS, LSF, Condor) need from the controller."""

from __future__ import annotations

import os
import pwd

import pytest

from bidsapp.execution.plugins import ensure_logname


@pytest.mark.parametrize("value", [None, ""])
def test_logname_comes_from_the_user_database_when_unset(monkeypatch, value):
    """nipype names each job after $LOGNAME (KeyError without it: containers, CI, cron)."""
    if value is None:
        monkeypatch.delenv("LOGNAME", raising=False)
    else:
        monkeypatch.setenv("LOGNAME", value)
    ensure_logname()
    assert os.environ["LOGNAME"] == pwd.getpwuid(os.getuid()).pw_name


def test_logname_of_a_uid_without_passwd_entry_is_the_uid(monkeypatch):
    def no_entry(uid):
        raise KeyError(f"getpwuid(): uid not found: {uid}")

    monkeypatch.delenv("LOGNAME", raising=False)
    monkeypatch.setattr(pwd, "getpwuid", no_entry)
    ensure_logname()
    assert os.environ["LOGNAME"] == str(os.getuid())


def test_a_set_logname_is_kept(monkeypatch):
    monkeypatch.setenv("LOGNAME", "someone")
    ensure_logname()
    assert os.environ["LOGNAME"] == "someone"

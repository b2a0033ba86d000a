"""nipype's work folder: private to an invocation (or ``--work-dir``), locked while in use, cleaned up."""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from bidsapp.errors import WorkFolderBusy

PREFIX = "bidsapp-work-"
LOCK = ".bidsapp.lock"
#: a failed or interrupted invocation's folder, kept for inspection, says why in this file
KEPT = "KEPT"
KEPT_DAYS = 7
#: folders younger than this are never taken for stale (their creator may not hold its lock yet)
MIN_AGE_S = 60


@contextlib.contextmanager
def _hold(folder: Path) -> Iterator[None]:
    with open(folder / LOCK, "a") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise WorkFolderBusy(str(folder)) from None
        yield


def remove_stale(parent: Path | None = None, now: float | None = None) -> list[Path]:
    """Remove this user's ``bidsapp-work-*`` folders that no live invocation holds.

    Folders of killed invocations go once they are :data:`MIN_AGE_S` old; folders kept after a failure
    (``KEPT``) after :data:`KEPT_DAYS` days. Returns the removed folders.
    """
    parent = Path(parent or tempfile.gettempdir())
    now = time.time() if now is None else now
    removed = []
    for folder in parent.glob(PREFIX + "*"):
        try:
            st = folder.stat()
            if not folder.is_dir() or st.st_uid != os.getuid() or now - st.st_mtime < MIN_AGE_S:
                continue
            kept = folder / KEPT
            if kept.exists() and now - kept.stat().st_mtime < KEPT_DAYS * 86400:
                continue
            with _hold(folder):
                shutil.rmtree(folder, ignore_errors=True)
            removed.append(folder)
        except (WorkFolderBusy, OSError):
            continue
    return removed


@contextlib.contextmanager
def work_folder(given: Path | None, invocation: str) -> Iterator[Path]:
    """The work folder of one invocation, locked while it runs.

    ``given`` (``--work-dir``) is kept so a later invocation resumes from it; a second invocation
    using it at the same time raises :class:`WorkFolderBusy`. Without it, a new folder in the
    system's temporary folder, removed on success; on failure or interruption it is kept with a
    ``KEPT`` note (and named in the error), and later invocations remove it after a week.
    """
    if given is not None:
        given.mkdir(parents=True, exist_ok=True)
        with _hold(given):
            yield given
        return
    remove_stale()
    folder = Path(tempfile.mkdtemp(prefix=f"{PREFIX}{invocation}-"))
    with _hold(folder):
        try:
            yield folder
        except BaseException as exc:
            (folder / KEPT).write_text(f"kept after {type(exc).__name__}: {exc}\n")
            raise
    shutil.rmtree(folder, ignore_errors=True)


#: the nipype workflow's folder inside a work folder, and the file naming the code that filled it
WORKFLOW_FOLDER, CODE_STAMP = "bidsapp_wf", ".bidsapp-code"


def drop_other_code_cache(work: Path, fingerprint: str | None = None) -> bool:
    """Empty the work folder's workflow cache when other code filled it (another bidsapp version, an edited
    checkout, other library versions: :func:`bidsapp.outputs.provenance.code_fingerprint`), then stamp it with
    this code's fingerprint.

    nipype reuses a node's cached result when its inputs hash the same, whatever code computed it: a resumed
    ``--work-dir`` must never hand one version's results (or their older set of outputs) to another.
    Returns True when a cache was removed.
    """
    from bidsapp.outputs.provenance import code_fingerprint

    fingerprint = fingerprint or code_fingerprint()
    folder = Path(work) / WORKFLOW_FOLDER
    stamp = folder / CODE_STAMP
    removed = False
    if folder.exists() and not (stamp.is_file() and stamp.read_text().strip() == fingerprint):
        shutil.rmtree(folder)
        removed = True
    folder.mkdir(parents=True, exist_ok=True)
    stamp.write_text(fingerprint + "\n")
    return removed


def forget_node_result(node_folder: str | os.PathLike) -> None:
    """Make nipype run the node of ``node_folder`` again when a later invocation resumes this work folder (a
    node whose file another node takes: the cleaning node renames the masking node's array into its output).

    nipype takes a node whose folder holds no hash file (``_0x<hash>.json``) for never run; its result file
    (``result_<node>.pklz``) stays, for the nodes of this invocation that read the node's other outputs.
    """
    for hashfile in Path(node_folder).glob("_0x*.json"):
        hashfile.unlink(missing_ok=True)

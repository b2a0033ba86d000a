"""One-line errors from filesystem failures and nipype crash files."""

from __future__ import annotations

import errno
import re
from pathlib import Path

#: a full, read-only or over-quota disk: exit 73 ("cannot write the output or work folder")
DISK_ERRNOS = (errno.ENOSPC, errno.EROFS, errno.EDQUOT)


def os_error_line(exc: OSError, work: Path) -> str:
    """One line for a filesystem failure: which file, what happened, what to do."""
    where = exc.filename or work
    if exc.errno == errno.ENOENT and exc.filename and Path(exc.filename).is_symlink():
        from bidsapp.core.files import missing_file_line

        return missing_file_line(Path(exc.filename))
    if exc.errno == errno.ENOENT and "/.git/annex/objects/" in str(exc.filename or ""):  # the link's target
        return (f"{where}: {exc.strerror or exc}; a DataLad or git-annex file whose content was not fetched: fetch "
                "it first (datalad get, or git annex get).")
    fix = {errno.ENOSPC: "free some space, or give --work-dir / output_dir on a larger disk",
           errno.EROFS: "the filesystem is read-only; choose a writable output_dir / --work-dir",
           errno.EACCES: "no permission; choose a folder you can write to",
           errno.EDQUOT: "disk quota exceeded; free some space or use another disk"}.get(
        exc.errno, "check the disk and the permissions")
    return f"{where}: {exc.strerror or exc}; {fix}."


def crash_reason(path: Path, bolds: dict[str, str]) -> tuple[str, bool]:
    """The user-facing line of a nipype crash file, prefixed with the failed run's BOLD file, and
    whether a disk error (:data:`DISK_ERRNOS`) caused it.

    ``bolds`` maps each run's sub-workflow name to its BOLD file (the crash file's ``Node:`` line
    names the sub-workflow).
    """
    lines = path.read_text(errors="replace").splitlines()
    node = next((ln[len("Node: "):].split(".") for ln in lines if ln.startswith("Node: ")), [])
    bold = bolds.get(node[1]) if len(node) > 1 else None
    disk = [ln for ln in lines if any(f"[Errno {n}]" in ln for n in DISK_ERRNOS)]
    # an OSError without a file name (numpy's writers raise them) names the node's folder, where it wrote
    folder = next((ln.split(":", 1)[1].strip() for ln in lines if ln.startswith("Working directory:")), ".")
    reason = _error_line(disk[:1] + list(reversed(lines)), Path(folder or "."))
    if bold is None or bold in reason:
        return reason, bool(disk)
    name = Path(bold).name
    if reason.startswith(f"{name}: "):  # a node named the run by its file name: the path instead, once
        return f"{bold}: {reason[len(name) + 2:]}", bool(disk)
    return (reason if name in reason else f"{bold}: {reason}"), bool(disk)


def _error_line(lines: list[str], folder: Path) -> str:
    """The first ValueError/InputError/OSError line of ``lines`` (a disk error first, then the
    traceback from its end), as one user-facing line (``folder``: where an error without a file name was)."""
    if any("BrokenProcessPool" in line for line in lines):
        return ("a worker process was killed while it ran this node (most often by the system's out-of-memory "
                "killer: see `dmesg`); give --nprocs a lower value or --mem-gb the memory the job really has, "
                "and run again")
    for line in lines:
        text = line.strip()
        known = re.match(r"(?:[\w.]+\.)?(?:ValueError|InputError|NameTaken): (.*)", text)
        if known:
            return known.group(1)
        if text.startswith(("OSError: ", "FileNotFoundError: ", "PermissionError: ")) or "[Errno " in text:
            match = re.search(r"\[Errno (\d+)\] ([^:]+)(?:: '([^']*)')?", text)
            if match:
                return os_error_line(OSError(int(match.group(1)), match.group(2), match.group(3)), folder)
            return text
    return lines[-1] if lines else "a node failed"

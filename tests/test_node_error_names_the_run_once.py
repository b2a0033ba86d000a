"""A node's failure becomes one line that names the run's BOLD file once (a red team saw
``<path>: <name>: <confounds path>: ...``: the path added in front of a message that already began with the run's
file name)."""

from __future__ import annotations

from pathlib import Path

import pytest

from bidsapp.cli.errors import crash_reason

BOLD = "/data/derivatives/fmriprep/sub-01/func/sub-01_task-rest_run-1_desc-preproc_bold.nii.gz"
NAME = Path(BOLD).name


def _crash(tmp_path: Path, error: str) -> Path:
    path = tmp_path / "crash.txt"
    path.write_text(f"Node: bidsapp_wf.run_1.cleaning\nWorking directory: /w\n\nTraceback (most recent call last):\n"
                    f'  File "x.py", line 1, in f\n    raise ValueError\n{error}\n')
    return path


@pytest.mark.parametrize("error, expected", [
    (f"ValueError: {NAME}: /data/conf.tsv: n/a values", f"{BOLD}: /data/conf.tsv: n/a values"),
    ("ValueError: /data/conf.tsv: n/a values", f"{BOLD}: /data/conf.tsv: n/a values"),
    (f"ValueError: {BOLD}: truncated file", f"{BOLD}: truncated file"),
    (f"ValueError: the mask of {NAME} is empty", f"the mask of {NAME} is empty"),
])
def test_the_run_is_named_once(tmp_path, error, expected):
    reason, disk = crash_reason(_crash(tmp_path, error), {"run_1": BOLD})
    assert reason == expected and not disk
    assert reason.count(NAME) == 1


def test_a_disk_error_without_a_file_name_names_the_node_folder(tmp_path):
    """numpy's writers (``np.savez``) raise ``OSError`` without a file name: the line names the node's folder (the
    disk that filled up), not ``.``."""
    reason, disk = crash_reason(_crash(tmp_path, "OSError: [Errno 28] No space left on device"), {"run_1": BOLD})
    assert disk and reason.startswith(f"{BOLD}: /w: No space left on device; free some space")


def test_a_killed_worker_says_so(tmp_path):
    """A worker killed under the node (the out-of-memory killer) breaks nipype's process pool: the line says what
    happened and what to change, not the crash file's ``Node:`` line."""
    error = ("concurrent.futures.process.BrokenProcessPool: A process in the process pool was terminated abruptly "
             "while the future was running or pending.")
    reason, disk = crash_reason(_crash(tmp_path, error), {"run_1": BOLD})
    assert not disk and reason.startswith(f"{BOLD}: a worker process was killed while it ran this node")
    assert "--nprocs" in reason and "Node:" not in reason

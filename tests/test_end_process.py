"""The ``bidsapp`` command ends without the interpreter's teardown (``launch.end_process``), and loses nothing
Python's own exit would have done that anyone can see: threads joined, ``atexit`` callbacks, buffered output, the
exit code, 120 when ``stdout`` cannot be flushed. Under a wrapper that runs the command and expects control back
(cProfile, ``python -i``, a ``runpy`` caller), the process exits as usual."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from bidsapp.cli.launch import started_as_command

SCRIPT = """
import atexit, os, sys, threading, time
from pathlib import Path
from bidsapp.cli.launch import end_process
folder = Path(sys.argv[1])
real_exit = os._exit
def recorded_exit(code):
    (folder / "os_exit").write_text(str(code))
    real_exit(code)
os._exit = recorded_exit
atexit.register(lambda: (folder / "atexit").write_text("ran"))
def late():
    time.sleep(0.3)
    (folder / "thread").write_text("joined")
threading.Thread(target=late).start()  # non-daemon: Python's exit waits for it
sys.stdout.write("buffered, not flushed")
if sys.argv[2] == "broken":
    class Broken:
        def write(self, text):
            return len(text)
        def flush(self):
            raise OSError(28, "No space left on device")
    sys.stdout = Broken()
end_process(int(sys.argv[3]))
raise SystemExit("end_process returned")
"""


def _run(tmp_path: Path, stdout: str, code: int) -> subprocess.CompletedProcess:
    """The script started as a console script is: ``python <its path> ...``."""
    script = tmp_path / "bidsapp"
    script.write_text(SCRIPT)
    return subprocess.run([sys.executable, str(script), str(tmp_path), stdout, str(code)], capture_output=True,
                          text=True, timeout=60)


def test_threads_joined_exit_callbacks_run_output_flushed_and_code_kept(tmp_path):
    proc = _run(tmp_path, "plain", 3)
    assert proc.returncode == 3, proc.stderr
    assert (tmp_path / "os_exit").read_text() == "3"  # the teardown was skipped
    assert proc.stdout == "buffered, not flushed"
    assert (tmp_path / "atexit").read_text() == "ran"
    assert (tmp_path / "thread").read_text() == "joined"
    assert "end_process returned" not in proc.stderr


def test_a_failed_flush_of_stdout_is_exit_code_120_unless_the_run_failed(tmp_path):
    assert _run(tmp_path, "broken", 0).returncode == 120
    assert _run(tmp_path, "broken", 2).returncode == 2


@pytest.mark.parametrize("argv, expected", [
    (["py", "-m", "bidsapp.cli.run", "bids", "out", "participant"], True),
    (["py", "-X", "importtime", "-u", "-m", "bidsapp.cli.run"], True),
    (["py", "SCRIPT", "bids", "out", "participant", "-i"], True),  # the console script; -i is bidsapp's
    (["py", "-B", "SCRIPT"], True),
    (["py", "-m", "cProfile", "-o", "p.prof", "-m", "bidsapp.cli.run"], False),
    (["py", "-m", "pdb", "SCRIPT"], False),
    (["py", "-c", "from bidsapp.cli.run import main; main()"], False),
    (["py", "other.py"], False),
    (["py"], False),
])
def test_started_as_command(monkeypatch, argv, expected):
    monkeypatch.setattr(sys, "argv", ["/venv/bin/bidsapp"])
    assert started_as_command([a.replace("SCRIPT", "/venv/bin/bidsapp") for a in argv]) is expected


def test_a_wrapper_gets_control_back(tmp_path):
    """``python -m cProfile -o FILE -m bidsapp.cli.run`` writes its profile (a red team's finding: os._exit ended
    the process before cProfile could)."""
    proc = subprocess.run([sys.executable, "-m", "cProfile", "-o", str(tmp_path / "p.prof"), "-m", "bidsapp.cli.run",
                           "--version"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "p.prof").stat().st_size > 0


def test_the_console_script_and_the_module_end_through_it():
    """Both ways a user starts bidsapp: the ``bidsapp`` console script and ``python -m bidsapp.cli.run``."""
    import bidsapp.cli.run as run

    assert 'bidsapp = "bidsapp.cli.launch:console"' in (Path(__file__).parents[1] / "pyproject.toml").read_text()
    assert Path(run.__file__).read_text().rstrip().endswith("end_process(main())")
    proc = subprocess.run([sys.executable, "-m", "bidsapp.cli.run", "--version"], capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 0 and proc.stdout.strip(), proc.stderr

"""The ``bidsapp`` command ends without the interpreter's teardown (``launch.end_process``), and loses nothing
Python's own exit would have done that anyone can see: threads joined, ``atexit`` callbacks, buffered output, the
exit code, 120 when ``stdout`` cannot be flushed."""

from __future__ import annotations

import subprocess
import sys

SCRIPT = """
import atexit, sys, threading, time
from pathlib import Path
from bidsapp.cli.launch import end_process
folder = Path(sys.argv[1])
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


def _run(tmp_path, stdout: str, code: int) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", SCRIPT, str(tmp_path), stdout, str(code)], capture_output=True,
                          text=True, timeout=60)


def test_threads_joined_exit_callbacks_run_output_flushed_and_code_kept(tmp_path):
    proc = _run(tmp_path, "plain", 3)
    assert proc.returncode == 3, proc.stderr
    assert proc.stdout == "buffered, not flushed"
    assert (tmp_path / "atexit").read_text() == "ran"
    assert (tmp_path / "thread").read_text() == "joined"
    assert "end_process returned" not in proc.stderr


def test_a_failed_flush_of_stdout_is_exit_code_120_unless_the_run_failed(tmp_path):
    assert _run(tmp_path, "broken", 0).returncode == 120
    assert _run(tmp_path, "broken", 2).returncode == 2


def test_the_console_script_and_the_module_end_through_it():
    """Both ways a user starts bidsapp: the ``bidsapp`` console script and ``python -m bidsapp.cli.run``."""
    from pathlib import Path

    import bidsapp.cli.run as run

    assert 'bidsapp = "bidsapp.cli.launch:console"' in (Path(__file__).parents[1] / "pyproject.toml").read_text()
    source = Path(run.__file__).read_text()
    assert source.rstrip().endswith("end_process(main())")
    proc = subprocess.run([sys.executable, "-m", "bidsapp.cli.run", "--version"], capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 0 and proc.stdout.strip(), proc.stderr

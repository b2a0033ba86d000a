"""``--nprocs 1`` with the default plugin runs the nodes in this process: no MultiProc worker, same outputs."""

import numpy as np

from bidsapp.cli.parser import parse_args
from bidsapp.cli.run import in_process_plugin, main


def test_plugin_choice(demo, tmp_path):
    bids = str(demo[0])
    out = str(tmp_path / "out")
    assert in_process_plugin(parse_args([bids, out, "participant", "--nprocs", "1"]), 1) == "Linear"
    assert in_process_plugin(parse_args([bids, out, "participant", "--nprocs", "1"]), 2) == "MultiProc"
    assert in_process_plugin(parse_args([bids, out, "participant", "--nprocs", "2"]), 1) == "MultiProc"
    assert in_process_plugin(parse_args([bids, out, "participant", "--nprocs", "1", "--plugin", "SLURM",
                                         "--work-dir", str(tmp_path / "w")]), 1) == "SLURM"


def test_one_process_starts_no_worker_and_equals_multiproc(demo, tmp_path, monkeypatch):
    """The same arrays as two MultiProc workers, bit for bit; a MultiProc plugin is never built."""
    from bidsapp.execution import plugins

    bids = str(demo[0])
    args = ["participant", "--participant-label", "01", "--run", "1"]
    assert main([bids, str(tmp_path / "multi"), *args, "--nprocs", "2"]) == 0

    def refuse(*a, **k):
        raise AssertionError("a MultiProc plugin was built for --nprocs 1")

    monkeypatch.setattr(plugins.OrphanSafeMultiProc, "__init__", refuse)
    assert main([bids, str(tmp_path / "one"), *args, "--nprocs", "1"]) == 0
    multi = sorted((tmp_path / "multi").rglob("*_timeseries.npy"))
    one = sorted((tmp_path / "one").rglob("*_timeseries.npy"))
    assert multi and [p.name for p in multi] == [p.name for p in one]
    for a, b in zip(multi, one):
        assert np.array_equal(np.load(a), np.load(b))


def test_a_failed_run_is_not_reported_finished(demo, tmp_path, capsys):
    """nipype's Linear plugin reports the nodes it skips after a failure as ended: the run is FAILED only."""
    import shutil

    src = demo[0]
    bids = tmp_path / "bids"
    shutil.copytree(src, bids)
    bold = sorted(bids.rglob("sub-01_*run-1_*desc-preproc_bold.nii.gz"))[0]
    data = bold.read_bytes()
    bold.write_bytes(data[: len(data) // 2])  # truncated: the masking node fails
    code = main([str(bids), str(tmp_path / "out"), "participant", "--participant-label", "01", "--run", "1",
                 "--nprocs", "1"])
    out = capsys.readouterr().out
    assert code != 0 and "FAILED" in out and "finished" not in out

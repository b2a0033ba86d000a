"""A run's outputs are one generation: failures and kills leave no false sidecar; changed inputs, settings,
versions or edited outputs are recomputed."""

from __future__ import annotations

import errno
import json
import os
import random
import shutil
import signal
import time

import nibabel as nib
import numpy as np
import pytest

from bidsapp.cli.run import main
from tests.reliability.helpers import STEM, SUB1, _cli, _popen, _sha, _temporaries, assert_sidecars_true


def test_failure_after_array_replaced_leaves_no_sidecar_and_rerun_recomputes(data, out, monkeypatch, capsys):
    """The new array replaced the old one, then the write failed (disk full / kill): the old
    sidecar must not describe the new array, and a rerun must not skip the run."""
    bids, ref = data
    from bidsapp.outputs.transaction import RunWriter

    real_install = RunWriter.install

    def install_then_fail(self, src, dst, **kw):
        if str(src).endswith("samples.tsv"):  # after _timeseries.npy and _features.tsv are installed
            raise OSError(errno.ENOSPC, "No space left on device", str(dst))
        return real_install(self, src, dst, **kw)

    monkeypatch.setattr(RunWriter, "install", install_then_fail)
    code = main([str(bids), str(out), "participant", "--participant-label", "01", "--high-pass", "0.01",
                 "--plugin", "Linear", "--replace-outputs"])
    err = capsys.readouterr().err
    assert code == 73 and "No space left on device" in err and err.count("\n") == 1
    folder = out / SUB1
    assert not (folder / f"{STEM}_timeseries.json").exists()  # invalidated before the array was replaced
    new, old = (np.load(f / f"{STEM}_timeseries.npy") for f in (folder, ref / SUB1))
    assert not np.array_equal(new, old)
    assert_sidecars_true(out)
    monkeypatch.setattr(RunWriter, "install", real_install)
    assert main([str(bids), str(out), "participant", "--participant-label", "01", "--plugin", "Linear",
                 "--replace-outputs"]) == 0
    assert "compute  sub-01_task-faces_run-1: no complete previous outputs" in capsys.readouterr().out
    np.testing.assert_array_equal(np.load(folder / f"{STEM}_timeseries.npy"),
                                  np.load(ref / SUB1 / f"{STEM}_timeseries.npy"))
    assert assert_sidecars_true(out) == 2


def test_kill_9_at_random_moments_never_leaves_a_false_sidecar(data, out):
    """Kill -9 a rerun with other settings at random moments; every sidecar left must describe
    the files on disk, and a final rerun gives the reference outputs and removes the partial files."""
    bids, ref = data
    rng = random.Random(8)
    for _ in range(2):
        proc = _popen(bids, out, "participant", "--participant-label", "01", "--high-pass", "0.01",
                      "--output-format", "npy", "nii.gz", "--replace-outputs")
        time.sleep(rng.uniform(1.5, 4.0))
        proc.send_signal(signal.SIGKILL)
        proc.communicate()
        assert_sidecars_true(out)
    (out / SUB1 / f".{STEM}_timeseries.abcd1234.tmp.npy").write_bytes(b"partial")  # as a kill leaves them
    done = _cli(bids, out, "participant", "--participant-label", "01", "--replace-outputs")
    assert done.returncode == 0, done.stderr
    assert assert_sidecars_true(out) == 2
    assert _temporaries(out) == []
    for name in (f"{STEM}_timeseries.npy", f"{STEM}_samples.tsv"):
        assert _sha(out / SUB1 / name) == _sha(ref / SUB1 / name)


def test_a_checksum_entry_cut_by_a_kill_is_removed_by_the_next_run(data, out):
    """A kill between an entry's temporary file and its rename leaves a hidden ``.tmp.json`` in
    logs/checksums (the cache is shared without a lock): the next invocation removes it, keeps the entries."""
    bids, _ = data
    cache = out / "logs" / "checksums"
    entries = sorted(cache.glob("*.json"))
    assert entries
    stray = cache / f".{entries[0].stem}.abcd1234.tmp.json"
    stray.write_text('{"path": "/some/fi')  # as a kill leaves it
    done = _cli(bids, out, "participant", "--participant-label", "01")
    assert done.returncode == 0, done.stderr
    assert _temporaries(out) == []
    assert set(entries) <= set(cache.glob("*.json"))


def test_pages_a_kill_left_behind_the_outputs_are_written_by_a_rerun_that_reuses_every_run(data, out):
    """A kill after the runs' sidecars and before the participant page: the rerun reuses every run (nothing to
    compute) and used to return before writing the page, leaving it missing or describing older outputs."""
    bids, _ = data
    page, citation = out / "sub-01.html", out / "logs" / "CITATION.md"
    sidecar = out / SUB1 / f"{STEM}_timeseries.json"
    kept = page.stat().st_mtime_ns
    done = _cli(bids, out, "participant", "--participant-label", "01")  # pages current: left as they are
    assert done.returncode == 0, done.stderr
    assert page.stat().st_mtime_ns == kept
    page.unlink()
    citation.unlink()
    done = _cli(bids, out, "participant", "--participant-label", "01")
    assert done.returncode == 0, done.stderr
    assert page.exists() and citation.exists()
    assert STEM.removeprefix("sub-01_") in page.read_text()
    page.write_text("<html>the page of older outputs</html>")
    older = sidecar.stat().st_mtime_ns - 10**9
    os.utime(page, ns=(older, older))
    done = _cli(bids, out, "participant", "--participant-label", "01")
    assert done.returncode == 0, done.stderr
    assert "older outputs" not in page.read_text() and STEM.removeprefix("sub-01_") in page.read_text()


@pytest.fixture
def private(data, tmp_path):
    """A private copy of the dataset, processed once (participant 01), to change its inputs."""
    bids, _ = data
    own = tmp_path / "bids"
    shutil.copytree(bids, own)
    out = tmp_path / "own-out"
    assert main([str(own), str(out), "participant", "--participant-label", "01", "--plugin", "Linear"]) == 0
    return own, out


def _rerun(bids, out, *extra) -> int:
    return main([str(bids), str(out), "participant", "--participant-label", "01", "--plugin", "Linear", *extra])


def test_changed_input_is_recomputed(private, capsys):
    """An fMRIPrep rerun replaced the BOLD under the same name: the run is recomputed, with the reason."""
    bids, out = private
    bold = next(bids.rglob("sub-01_task-faces_run-1_*_desc-preproc_bold.nii.gz"))
    img = nib.load(bold)
    data4d = np.asanyarray(img.dataobj).astype(np.float32)
    data4d[..., 10] *= 1.5
    capsys.readouterr()
    nib.save(nib.Nifti1Image(data4d, img.affine, img.header), bold)
    assert _rerun(bids, out) == 0
    log = capsys.readouterr().out
    assert "compute  sub-01_task-faces_run-1: input 'bold'" in log and "changed (sha256 differs)" in log
    assert "skipped  sub-01_task-faces_run-2" in log
    meta = json.loads((out / SUB1 / f"{STEM}_timeseries.json").read_text())
    assert next(s for s in meta["Sources"] if s["Role"] == "bold")["SHA256"] == _sha(bold)
    assert _rerun(bids, out) == 0
    assert capsys.readouterr().out.count("skipped") == 2


def test_changed_bold_json_is_recomputed(private, capsys):
    """A new RepetitionTime / StartTime in the BOLD JSON recomputes the run (the JSON is a source)."""
    bids, out = private
    js = next(bids.rglob("sub-01_task-faces_run-1_*_desc-preproc_bold.json"))
    meta = json.loads(js.read_text())
    js.write_text(json.dumps(dict(meta, StartTime=0.5)))
    capsys.readouterr()
    assert _rerun(bids, out) == 0
    log = capsys.readouterr().out
    assert "compute  sub-01_task-faces_run-1: input 'metadata_" in log and "changed" in log
    samples = (out / SUB1 / f"{STEM}_samples.tsv").read_text().splitlines()
    assert samples[1].split("\t")[1] == "0.5"


def test_work_dir_never_reuses_results_of_other_inputs(private, tmp_path, capsys):
    """With --work-dir, a confounds file edited in place with the same size
    and mtime must not let nipype reuse its cached nodes."""
    bids, out = private
    work = tmp_path / "w"
    assert _rerun(bids, out, "--work-dir", str(work), "--high-pass", "0.01", "--replace-outputs") == 0
    conf = next(bids.rglob("sub-01_task-faces_run-1_desc-confounds_timeseries.tsv"))
    st = conf.stat()
    text = conf.read_text().splitlines()
    header = text[0].split("\t")
    col = header.index("white_matter")
    rows = [r.split("\t") for r in text[1:]]
    for r in rows[5:]:
        r[col] = r[col][::-1] if r[col] != "n/a" else r[col]  # same length, other values
    conf.write_text("\n".join(["\t".join(header)] + ["\t".join(r) for r in rows]) + "\n")
    os.utime(conf, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert conf.stat().st_size == st.st_size
    assert _rerun(bids, out, "--work-dir", str(work), "--high-pass", "0.01") == 0
    fresh = tmp_path / "fresh"
    assert main([str(bids), str(fresh), "participant", "--participant-label", "01", "--run", "1",
                 "--high-pass", "0.01", "--plugin", "Linear"]) == 0
    assert _sha(out / SUB1 / f"{STEM}_timeseries.npy") == _sha(fresh / SUB1 / f"{STEM}_timeseries.npy")


def test_a_second_dataset_is_refused(data, private, tmp_path, capsys):
    """Red team: DatasetLinks is one per output folder; another dataset's runs would re-point earlier URIs."""
    bids, _ = data
    _, out = private
    assert _rerun(bids, out) == 2
    err = capsys.readouterr().err
    assert "holds outputs of the" in err and "separate output folder" in err


def test_other_version_or_edited_output_is_recomputed(data, out, capsys):
    """Outputs of another bidsapp version, or an output edited after the fact, are not reused."""
    bids, _ = data
    sidecar = out / SUB1 / f"{STEM}_timeseries.json"
    meta = json.loads(sidecar.read_text())
    meta["SoftwareVersions"]["bidsapp"] = "0.0.1"
    sidecar.write_text(json.dumps(meta))
    samples = out / SUB1 / "sub-01_task-faces_run-2_space-MNI152NLin2009cAsym_desc-simple_samples.tsv"
    samples.write_text(samples.read_text().replace("True", "False", 1))
    assert main([str(bids), str(out), "participant", "--participant-label", "01", "--plugin", "Linear"]) == 0
    log = capsys.readouterr().out
    assert "run-1: made by bidsapp 0.0.1" in log
    assert "run-2: output sub-01_task-faces_run-2_space-MNI152NLin2009cAsym_desc-simple_samples.tsv changed" in log
    assert assert_sidecars_true(out) == 2


def test_other_mask_strategy_keeps_the_first_outputs(data, out, capsys):
    """Two mask strategies in one folder: each keeps its own mask file and complete outputs."""
    bids, _ = data
    assert _rerun(bids, out, "--denoise", "scrubbing", "--mask-strategy", "epi") == 0
    assert "now incomplete" not in capsys.readouterr().err
    folder = out / SUB1
    assert list(folder.glob("*run-1*_desc-epi_mask.nii.gz")) and list(folder.glob("*run-1*_desc-brain_mask.nii.gz"))
    assert assert_sidecars_true(out) == 4
    import bidsapp

    assert bidsapp.load(out, subject="01", run=1, desc="simple").X.shape[1] != \
        bidsapp.load(out, subject="01", run=1, desc="scrubbing").X.shape[1]


def test_files_of_an_earlier_generation_are_removed(data, out):
    """Betas and a tsv.gz of earlier settings do not stay next to a sidecar that does not list them."""
    bids, _ = data
    assert _rerun(bids, out, "--trial-estimates", "lss", "--output-format", "npy", "tsv.gz",
                  "--replace-outputs") == 0
    folder = out / SUB1
    assert list(folder.glob(f"{STEM}_betas.npy")) and list(folder.glob(f"{STEM}_timeseries.tsv.gz"))
    assert _rerun(bids, out, "--replace-outputs") == 0
    left = {p.name for p in folder.glob(f"{STEM}_*")}
    listed = {e["Path"] for e in json.loads((folder / f"{STEM}_timeseries.json").read_text())["OutputFiles"]}
    assert left == {n for n in listed if n.startswith(STEM + "_")} | {f"{STEM}_timeseries.json"}
    import bidsapp

    with pytest.raises(Exception, match="betas"):
        bidsapp.dataset(out, kind="betas", subject="01")


def test_streamed_outputs_leave_no_nested_temporaries(tmp_path):
    from bidsapp.core.io import write_nifti_series
    from bidsapp.core.tsv import write_tsv_rows

    target = tmp_path / ".x.abc.tmp.tsv.gz"
    write_tsv_rows(target, ["a"], iter([np.zeros((2, 1), np.float32)]), atomic=False)
    nii = tmp_path / ".y.abc.tmp.nii.gz"
    write_nifti_series(nii, iter([np.zeros((2, 2, 2), np.float32)]), shape=(2, 2, 2), n_volumes=1,
                       affine=np.eye(4), t_r=2.0, atomic=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == [target.name, nii.name]


def test_group_level_names_incomplete_runs(data, out, capsys):
    bids, _ = data
    (out / SUB1 / f"{STEM}_timeseries.json").unlink()
    with pytest.warns(UserWarning, match=f"1 run\\(s\\) have no sidecar .*{STEM}"):
        assert main([str(bids), str(out), "group"]) == 0

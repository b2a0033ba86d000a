"""Outputs that stay true: kills, changed inputs, concurrent invocations, config files, names, modes.

Each test names the item of the reliability issue it covers. Kill and concurrency tests run the real
command in subprocesses and send real signals.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from bidsapp.cli.run import main
from bidsapp.demo import make_dataset

SUB1 = "sub-01/func"
STEM = "sub-01_task-faces_run-1_space-MNI152NLin2009cAsym_desc-simple"


def _cli(*args: str, timeout: float = 120, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "bidsapp.cli.run", *map(str, args)], capture_output=True,
                          text=True, timeout=timeout, **kw)


def _popen(*args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "bidsapp.cli.run", *map(str, args)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def assert_sidecars_true(out: Path) -> int:
    """Every sidecar describes exactly the files on disk: each listed output exists with its size and sha256."""
    n = 0
    for sidecar in out.rglob("*_timeseries.json"):
        meta = json.loads(sidecar.read_text())
        for entry in meta["OutputFiles"]:
            path = sidecar.parent / entry["Path"]
            assert path.is_file(), f"{sidecar.name} lists missing {entry['Path']}"
            assert path.stat().st_size == entry["Size"] and _sha(path) == entry["SHA256"], (
                f"{sidecar.name} does not describe {entry['Path']}")
        X = np.load(sidecar.with_name(sidecar.name.replace(".json", ".npy")), mmap_mode="r")
        assert list(X.shape) == meta["Shape"]
        n += 1
    return n


def _temporaries(out: Path) -> list[Path]:
    return [p for p in out.rglob(".*") if ".tmp" in p.name]


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """Demo dataset and a reference output of participant 01 (default settings)."""
    base = tmp_path_factory.mktemp("rel")
    bids = base / "bids"
    make_dataset(bids, n_volumes=60)
    ref = base / "ref"
    assert main([str(bids), str(ref), "participant", "--participant-label", "01", "--nprocs", "1"]) == 0
    return bids, ref


@pytest.fixture
def out(data, tmp_path):
    """A copy of the reference outputs to mutate."""
    _, ref = data
    dst = tmp_path / "out"
    shutil.copytree(ref, dst)
    return dst


# --- 1. mixed generations --------------------------------------------------------------------------------------

def test_failure_after_array_replaced_leaves_no_sidecar_and_rerun_recomputes(data, out, monkeypatch, capsys):
    """Item 1: the new array replaced the old one, then the write failed (disk full / kill): the old
    sidecar must not describe the new array, and a rerun must not skip the run."""
    bids, ref = data
    from bidsapp.outputs import RunWriter

    real_install = RunWriter.install

    def install_then_fail(self, src, dst):
        if str(src).endswith("samples.tsv"):  # after _timeseries.npy and _features.tsv are installed
            raise OSError(errno.ENOSPC, "No space left on device", str(dst))
        return real_install(self, src, dst)

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
    """Items 1 and 9: kill -9 a rerun with other settings at random moments; every sidecar left must describe
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


# --- 2. stale outputs ------------------------------------------------------------------------------------------

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
    """Item 2: an fMRIPrep rerun replaced the BOLD under the same name: the run is recomputed, with the reason."""
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
    """Item 4 (found by the red team): with --work-dir, a confounds file edited in place with the same size
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
    """Item 2: outputs of another bidsapp version, or an output edited after the fact, are not reused."""
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


# --- 3 and 10. names -------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["../../../../../X", "a/b", "a_b", "a-b", ""])
def test_atlas_name_must_be_a_bids_label(data, tmp_path, capsys, name):
    """Item 3: --atlas-name must be letters and digits (exit 2), so no path escapes the output folder."""
    bids, _ = data
    atlas = tmp_path / "atlas.nii.gz"
    nib.save(nib.Nifti1Image(np.ones((2, 2, 2), np.int16), np.eye(4)), atlas)
    code = main([str(bids), str(tmp_path / "o"), "participant", "--atlas", str(atlas), "--atlas-name", name])
    assert code == 2 and "not a BIDS label" in capsys.readouterr().err
    assert not (tmp_path / "o").exists() and not list(tmp_path.parent.glob("X*"))


def test_writer_refuses_paths_outside_the_output_folder(tmp_path):
    """Item 3: the naming place refuses any entity that is not a label and any path that would escape."""
    from bidsapp import derivatives as drv

    with pytest.raises(ValueError, match="not a BIDS label"):
        drv.output_path(tmp_path, {"subject": "../..", "task": "x"}, "timeseries", ".npy")
    naming = drv.RunNaming({"subject": "01", "task": "x", "space": "MNI"}, desc="simple", atlas="a/b")
    with pytest.raises(ValueError, match="not a BIDS label"):
        naming.sidecar(tmp_path)


def test_desc_labels_are_alphanumeric_and_pybids_reads_them(tmp_path):
    """Item 10: --denoise ica_aroma writes desc-icaaroma (pybids read desc-ica_aroma as desc-ica)."""
    from bids.layout import parse_file_entities

    from bidsapp import derivatives as drv

    naming = drv.RunNaming({"subject": "01", "task": "rest", "run": "1", "space": "MNI152NLin6Asym", "res": "2"},
                           desc=drv.desc_label("ica_aroma"))
    path = naming.sidecar(tmp_path)
    assert path.name == "sub-01_task-rest_run-1_space-MNI152NLin6Asym_res-2_desc-icaaroma_timeseries.json"
    ents = parse_file_entities(str(path), config=["bids", "derivatives"])
    assert ents["desc"] == "icaaroma" and ents["res"] == "2" and ents["space"] == "MNI152NLin6Asym"


def test_same_run_twice_is_exit_2_naming_both(data, tmp_path, capsys):
    """Item 10: a .nii copy next to the .nii.gz is the same run found twice."""
    bids, _ = data
    fmriprep = tmp_path / "fmriprep"
    shutil.copytree(bids / "derivatives" / "fmriprep", fmriprep)
    gz = next(fmriprep.rglob("sub-01_task-faces_run-1_*_desc-preproc_bold.nii.gz"))
    plain = gz.with_name(gz.name[: -len(".gz")])
    nib.save(nib.load(gz), plain)
    code = main([str(bids), str(tmp_path / "o"), "participant", "--participant-label", "01",
                 "--fmriprep-dir", str(fmriprep)])
    err = capsys.readouterr().err
    assert code == 2 and "found twice" in err and gz.name in err and plain.name in err


def _sub01_fmriprep(bids: Path, tmp_path: Path) -> tuple[Path, Path]:
    """A copy of the fMRIPrep folder with sub-01 only, and its func folder (tests that add or rename files)."""
    fmriprep = tmp_path / "fmriprep"
    shutil.copytree(bids / "derivatives" / "fmriprep", fmriprep, ignore=shutil.ignore_patterns("sub-02"))
    return fmriprep, fmriprep / "sub-01" / "func"


def test_res_entities_are_carried_to_masks_and_names(data, tmp_path, capsys):
    """Item 10: a res-2 BOLD beside a res-1 one gets its own mask and its own output names."""
    bids, _ = data
    fmriprep, func = _sub01_fmriprep(bids, tmp_path)
    for f in list(func.glob("sub-01_task-faces_run-1_space-*")):
        new = f.with_name(f.name.replace("_space-MNI152NLin2009cAsym_", "_space-MNI152NLin2009cAsym_res-1_"))
        f.rename(new)
    bold1 = next(func.glob("*run-1*res-1_desc-preproc_bold.nii.gz"))
    img, mask = nib.load(bold1), nib.load(next(func.glob("*run-1*res-1_desc-brain_mask.nii.gz")))
    down = np.asanyarray(img.dataobj)[::2, ::2, ::2]
    aff2 = img.affine @ np.diag([2, 2, 2, 1])
    nib.save(nib.Nifti1Image(down, aff2, img.header), str(bold1).replace("res-1", "res-2"))
    nib.save(nib.Nifti1Image(np.asanyarray(mask.dataobj)[::2, ::2, ::2], aff2), str(bold1).replace(
        "res-1_desc-preproc_bold", "res-2_desc-brain_mask"))
    shutil.copy(bold1.with_name(bold1.name.replace(".nii.gz", ".json")),
                str(bold1).replace("res-1", "res-2").replace(".nii.gz", ".json"))
    out = tmp_path / "o"
    code = main([str(bids), str(out), "participant", "--participant-label", "01", "--task", "faces", "--run", "1",
                 "--fmriprep-dir", str(fmriprep), "--plugin", "Linear"])
    assert code == 0, capsys.readouterr().err
    folder = out / SUB1
    for res, shape in (("1", img.shape[:3]), ("2", down.shape[:3])):
        stem = f"sub-01_task-faces_run-1_space-MNI152NLin2009cAsym_res-{res}"
        m = nib.load(folder / f"{stem}_desc-brain_mask.nii.gz")
        assert m.shape == shape
        meta = json.loads((folder / f"{stem}_desc-simple_timeseries.json").read_text())
        assert meta["MaskVoxelCount"] == int(np.asanyarray(m.dataobj).sum()) == meta["Shape"][1]


# --- 4 and 5. config files -------------------------------------------------------------------------------------

@pytest.mark.parametrize("config, key, expected", [
    ({"output_format": "tsv.gz"}, "output_format", ("tsv.gz",)),
    ({"participant_label": "01"}, "participant_label", ("01",)),
    ({"task": "faces"}, "task", ("faces",)),
    ({"confounds": ["trans_x", "rot_z"]}, "confounds", ("trans_x", "rot_z")),
    ({"low_pass": "0.08"}, "low_pass", 0.08),
    ({"detrend": False}, "detrend", False),
    ({"demean": False}, "demean", False),
    ({"trial_window": [-4, 20]}, "trial_window", (-4.0, 20.0)),
])
def test_config_values_are_typed_like_the_command_line(data, tmp_path, config, key, expected):
    """Item 4: a config file goes through the command-line parser."""
    from bidsapp.cli.parser import parse_args

    bids, _ = data
    cfg = tmp_path / "c.json"
    cfg.write_text(json.dumps(config))
    assert getattr(parse_args([str(bids), str(tmp_path / "o"), "participant", "--config", str(cfg)]), key) == expected


@pytest.mark.parametrize("config, words", [
    ({"nprocs": "two"}, ["'nprocs'", '"two"', "invalid int"]),
    ({"trial_window": 5}, ["'trial_window'", "expected 2"]),
    ({"mask_strategy": "x"}, ["'mask_strategy'", "choose from", "epi"]),
    ({"resample_mask": "yes"}, ["'resample_mask'", "true or false"]),
    ({"nprocs": 0}, ["'nprocs'", "> 0"]),
    ({"low_pass": [0.1, 0.2]}, ["'low_pass'", "single value"]),
    ({"bids_dir": "/x"}, ["unknown setting", "bids_dir"]),
])
def test_bad_config_values_exit_2_naming_key_value_and_allowed(data, tmp_path, capsys, config, words):
    """Item 4: a bad value is exit 2 naming the key, the value and what is allowed."""
    bids, _ = data
    cfg = tmp_path / "c.json"
    cfg.write_text(json.dumps(config))
    assert main([str(bids), str(tmp_path / "o"), "participant", "--config", str(cfg)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and str(cfg) in err and all(w in err for w in words), err


@pytest.mark.parametrize("spelling", [["--denoise=simple"], ["--denoise", "simple"], ["--deno", "simple"],
                                      ["--deno=simple"]])
def test_command_line_wins_in_every_spelling(data, tmp_path, spelling):
    """Item 5: config {"denoise": "scrubbing"} loses to the command line however it is spelled."""
    from bidsapp.cli.parser import parse_args

    bids, _ = data
    cfg = tmp_path / "c.toml"
    cfg.write_text('denoise = "scrubbing"\nlow_pass = 0.1\n')
    s = parse_args([str(bids), str(tmp_path / "o"), "participant", "--config", str(cfg), *spelling])
    assert s.denoise == "simple" and s.low_pass == 0.1


# --- 6, 12. concurrency, logs and the work folder ------------------------------------------------------------

def test_concurrent_invocations_same_participant(data, tmp_path):
    """Item 6: several invocations for the same participant at once never crash nor corrupt; their logs differ."""
    bids, ref = data
    out = tmp_path / "o"
    procs = [_popen(bids, out, "participant", "--participant-label", "01", "--nprocs", "1") for _ in range(2)]
    results = [(p.wait(timeout=120), p.communicate()) for p in procs]
    assert all(code == 0 for code, _ in results), [err for _, (_, err) in results]
    assert assert_sidecars_true(out) == 2
    assert len(list((out / "logs").glob("settings-*.json"))) == 2
    assert _sha(out / SUB1 / f"{STEM}_timeseries.npy") == _sha(ref / SUB1 / f"{STEM}_timeseries.npy")
    assert _temporaries(out) == []


def test_shared_work_dir_is_refused_not_corrupted(data, tmp_path):
    """Item 6: a --work-dir in use by another invocation is exit 2 with the fix."""
    bids, _ = data
    work = tmp_path / "w"
    first = _popen(bids, tmp_path / "o1", "participant", "--participant-label", "01", "--work-dir", work)
    deadline = time.time() + 30
    while not (work / ".bidsapp.lock").exists() and time.time() < deadline:
        time.sleep(0.05)
    time.sleep(0.3)
    second = _cli(bids, tmp_path / "o2", "participant", "--participant-label", "01", "--work-dir", work)
    first.send_signal(signal.SIGTERM)  # its own outcome is tested elsewhere
    first.communicate(timeout=60)
    if second.returncode != 0:  # the first may already be done on a fast machine
        assert second.returncode == 2 and "in use by another bidsapp invocation" in second.stderr


def test_default_work_folder_is_private_and_removed(data, tmp_path, monkeypatch):
    """Item 12: without --work-dir, work happens in a per-invocation temporary folder, removed on success;
    StartedAt/DurationSeconds are the run's own."""
    import tempfile

    bids, _ = data
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(tmp))
    out = tmp_path / "o"
    t0 = time.time()
    assert main([str(bids), str(out), "participant", "--participant-label", "01", "--plugin", "Linear"]) == 0
    total = time.time() - t0
    assert list(tmp.iterdir()) == [] and not (out / "logs" / "work").exists()
    metas = [json.loads(p.read_text()) for p in sorted(out.rglob("*_timeseries.json"))]
    assert metas[0]["StartedAt"] != metas[1]["StartedAt"]
    assert all(0 < m["DurationSeconds"] < total for m in metas)


# --- 7. orphans ------------------------------------------------------------------------------------------------

def test_kill_9_of_main_process_leaves_no_worker(data, tmp_path):
    """Item 7: MultiProc workers exit when the main process is killed."""
    psutil = pytest.importorskip("psutil")
    bids, _ = data
    proc = _popen(bids, tmp_path / "o", "participant", "--nprocs", "2", "--high-pass", "0.01")
    main_proc = psutil.Process(proc.pid)
    deadline, workers = time.time() + 60, []
    while time.time() < deadline and len(workers) < 2:
        workers = main_proc.children(recursive=True)
        time.sleep(0.05)
    assert workers, "no MultiProc worker started"
    proc.send_signal(signal.SIGKILL)
    proc.communicate()
    gone, alive = psutil.wait_procs(workers, timeout=10)
    assert not alive, f"orphaned workers: {alive}"


# --- 8. file modes ---------------------------------------------------------------------------------------------

def test_outputs_follow_the_umask(data):
    """Item 8: 0644 files and 0755 folders under umask 022 (the reference run of this module)."""
    _, ref = data
    old = os.umask(0o022)
    os.umask(old)
    assert old == 0o022
    for path in ref.rglob("*"):
        if "checksums" in path.parts or "locks" in path.parts:
            continue
        mode = path.stat().st_mode & 0o777
        assert mode == (0o755 if path.is_dir() else 0o644), f"{path}: {oct(mode)}"


# --- 11. errors that name the file ------------------------------------------------------------------------------

@contextlib.contextmanager
def _tmpfs(path: Path, options: str):
    """A small tmpfs mounted at ``path`` for the test (root only, else the test is skipped)."""
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("mounting a small filesystem needs root and mount(8)")
    path.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)], capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount tmpfs here: {done.stderr.decode().strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], capture_output=True)


def test_full_output_disk_is_one_line_and_no_false_sidecar(data, tmp_path):
    """Item 11 (and 1): the output filesystem fills up during the write."""
    bids, _ = data
    out = tmp_path / "full"
    with _tmpfs(out, "size=1200k"):
        done = _cli(bids, out, "participant", "--participant-label", "01", "--nprocs", "1")
        assert done.returncode == 73, done.stderr
        line = done.stderr.strip().splitlines()
        assert len(line) == 1 and "No space left on device" in line[0] and str(out) in line[0], done.stderr
        assert "unexpected error" not in line[0]
        assert_sidecars_true(out)


def test_full_work_disk_names_the_folder_and_the_fix(data, tmp_path):
    """Item 11: the work folder's disk is full."""
    bids, _ = data
    work = tmp_path / "work"
    with _tmpfs(work, "size=400k"):
        done = _cli(bids, tmp_path / "o", "participant", "--participant-label", "01", "--nprocs", "1",
                    "--work-dir", work)
        assert done.returncode != 0
        assert "No space left on device" in done.stderr and "--work-dir" in done.stderr, done.stderr
        assert "unexpected error" not in done.stderr and len(done.stderr.strip().splitlines()) == 1


def test_read_only_output_folder(data, tmp_path):
    """Item 11: an output folder on a read-only filesystem is one line with the folder and exit 73."""
    bids, _ = data
    out = tmp_path / "ro"
    with _tmpfs(out, "ro,size=1m"):
        done = _cli(bids, out, "participant", "--participant-label", "01")
        assert done.returncode == 73, done.stderr
        assert str(out) in done.stderr and "Read-only file system" in done.stderr
        assert len(done.stderr.strip().splitlines()) == 1


def test_mask_grid_message_shows_what_differs(tmp_path):
    """Item 11: two grids that differ only by their origin are printed with their origins."""
    from bidsapp.core.masks import load_mask

    aff = np.diag([3.0, 3.0, 3.0, 1.0])
    shifted = aff.copy()
    shifted[:3, 3] = [1.5, 0, 0]
    nib.save(nib.Nifti1Image(np.ones((4, 4, 4), np.uint8), shifted), tmp_path / "m.nii.gz")
    with pytest.raises(ValueError) as err:
        load_mask(tmp_path / "m.nii.gz", (4, 4, 4), aff)
    assert "origin [1.5, 0.0, 0.0] mm" in str(err.value) and "origin [0.0, 0.0, 0.0] mm" in str(err.value)


def test_node_errors_name_the_run(tmp_path, capsys):
    """Item 11: a run too short for the Butterworth filter names the run's BOLD file."""
    bids = tmp_path / "bids"
    make_dataset(bids, n_volumes=30)
    code = main([str(bids), str(tmp_path / "o"), "participant", "--participant-label", "01", "--run", "1",
                 "--high-pass", "0.02", "--low-pass", "0.2", "--plugin", "Linear"])
    err = capsys.readouterr().err
    assert code == 1 and "sub-01_task-faces_run-1_space-MNI152NLin2009cAsym_desc-preproc_bold.nii.gz: " in err
    assert "Butterworth" in err and err.count("\n") == 1


def test_late_trial_warning_is_one_line_from_bidsapp(data, tmp_path):
    """Item 11: a trial after the end of the run is one warning line said by bidsapp."""
    bids, _ = data
    raw = tmp_path / "bids"
    shutil.copytree(bids, raw, symlinks=True)
    events = next((raw / "sub-01" / "func").glob("*run-1_events.tsv"))
    events.write_text(events.read_text() + "9000.0\t1.0\tface\tn/a\n")
    done = _cli(raw, tmp_path / "o", "participant", "--participant-label", "01", "--run", "1")
    assert done.returncode == 0, done.stderr
    lines = [ln for ln in done.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("bidsapp: warning: ") and "after the end of the run" in lines[0]


def test_work_dir_resume_after_kill(data, tmp_path):
    """README: with --work-dir an interrupted invocation resumes (the killed one's lock is released)."""
    bids, ref = data
    work, out = tmp_path / "w", tmp_path / "o"
    proc = _popen(bids, out, "participant", "--participant-label", "01", "--work-dir", work, "--nprocs", "1")
    deadline = time.time() + 60
    while not list(work.rglob("result_masking.pklz")) and time.time() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.communicate()
    done = _cli(bids, out, "participant", "--participant-label", "01", "--work-dir", work, "--nprocs", "1")
    assert done.returncode == 0, done.stderr
    assert assert_sidecars_true(out) == 2
    assert _sha(out / SUB1 / f"{STEM}_timeseries.npy") == _sha(ref / SUB1 / f"{STEM}_timeseries.npy")
    assert work.is_dir()  # a given --work-dir is kept


def test_cluster_plugins_need_a_shared_work_dir(data, tmp_path, capsys):
    """README: SLURM & co. run nodes elsewhere: without --work-dir it is exit 2 with the fix."""
    bids, _ = data
    assert main([str(bids), str(tmp_path / "o"), "participant", "--participant-label", "01",
                 "--plugin", "SLURM"]) == 2
    assert "--work-dir" in capsys.readouterr().err



# --- found by the red team --------------------------------------------------------------------------------------

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
    assert _rerun(bids, out, "--trial-estimates", "lss", "--output-format", "npy", "tsv.gz", "--replace-outputs") == 0
    folder = out / SUB1
    assert list(folder.glob(f"{STEM}_betas.npy")) and list(folder.glob(f"{STEM}_timeseries.tsv.gz"))
    assert _rerun(bids, out, "--replace-outputs") == 0
    left = {p.name for p in folder.glob(f"{STEM}_*")}
    listed = {e["Path"] for e in json.loads((folder / f"{STEM}_timeseries.json").read_text())["OutputFiles"]}
    assert left == {n for n in listed if n.startswith(STEM + "_")} | {f"{STEM}_timeseries.json"}
    import bidsapp

    with pytest.raises(Exception, match="betas"):
        bidsapp.dataset(out, kind="betas", subject="01")


@pytest.mark.parametrize("signum, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_interrupt_is_one_line_naming_the_kept_work_folder(data, tmp_path, signum, code):
    bids, _ = data
    env = dict(os.environ, TMPDIR=str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    proc = subprocess.Popen([sys.executable, "-m", "bidsapp.cli.run", str(bids), str(tmp_path / "o"),
                             "participant", "--high-pass", "0.01"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env)
    deadline = time.time() + 60
    while not list((tmp_path / "tmp").glob("bidsapp-work-*/bidsapp_wf")) and time.time() < deadline:
        time.sleep(0.05)
    time.sleep(0.5)
    proc.send_signal(signum)
    _, err = proc.communicate(timeout=60)
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert proc.returncode == code, err
    assert len(lines) == 1 and lines[0].startswith("bidsapp: interrupted by") and "work folder kept: " in lines[0]
    kept = Path(lines[0].split("work folder kept: ")[1].rstrip("."))
    assert (kept / "KEPT").exists()
    assert_sidecars_true(tmp_path / "o")


def test_stale_work_folders_are_removed(tmp_path):
    from bidsapp import workdir

    now = time.time()
    dead, failed, old_failed, young, busy = (tmp_path / f"bidsapp-work-{n}" for n in range(5))
    for f in (dead, failed, old_failed, young, busy):
        f.mkdir()
    (failed / "KEPT").write_text("x")
    (old_failed / "KEPT").write_text("x")
    os.utime(old_failed / "KEPT", (now - 8 * 86400, now - 8 * 86400))
    for f in (dead, failed, old_failed, busy):
        os.utime(f, (now - 3600, now - 3600))
    with workdir._hold(busy):
        removed = workdir.remove_stale(tmp_path, now=now)
    assert sorted(removed) == sorted([dead, old_failed])
    assert failed.exists() and young.exists() and busy.exists()


def test_non_ascii_atlas_names(data, tmp_path, capsys):
    bids, _ = data
    atlas = tmp_path / "äöü.nii.gz"
    nib.save(nib.Nifti1Image(np.ones((2, 2, 2), np.int16), np.eye(4)), atlas)
    from bidsapp.cli.parser import parse_args

    s = parse_args([str(bids), str(tmp_path / "o"), "participant", "--atlas", str(atlas)])
    assert s.atlas_name == "atlas"  # nothing ASCII left of the file name
    assert main([str(bids), str(tmp_path / "o"), "participant", "--atlas", str(atlas), "--atlas-name", "ä"]) == 2
    assert "e.g. 'schaefer100'" in capsys.readouterr().err


def test_plugin_args_object_in_a_config_file(data, tmp_path):
    from bidsapp.cli.parser import parse_args

    bids, _ = data
    cfg = tmp_path / "c.json"
    cfg.write_text(json.dumps({"plugin_args": {"n_procs": 1}}))
    s = parse_args([str(bids), str(tmp_path / "o"), "participant", "--config", str(cfg)])
    assert json.loads(s.plugin_args) == {"n_procs": 1}


def test_echo_and_part_runs_find_the_runs_confounds_and_mask(data, tmp_path):
    """fMRIPrep writes one confounds file and brain mask per run, not per echo or part."""
    from bidsapp.collect import collect_runs

    bids, _ = data
    fmriprep, func = _sub01_fmriprep(bids, tmp_path)
    bold = next(func.glob("sub-01_task-faces_run-2_*_desc-preproc_bold.nii.gz"))
    for echo in (1, 2):
        shutil.copy(bold, str(bold).replace("_run-2_", f"_run-2_echo-{echo}_part-mag_"))
    bold.unlink()
    runs = collect_runs(bids, fmriprep, participants=["01"], runs=["2"])
    assert len(runs) == 2 and all(r.confounds is not None and r.mask is not None for r in runs)
    assert {r.entities["echo"] for r in runs} == {"1", "2"}


# --- found by the second red-team pass ---------------------------------------------------------------------------

@pytest.mark.parametrize("signum, code", [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_signal_to_the_whole_process_group_is_one_line(data, tmp_path, signum, code):
    """Ctrl-C in a terminal and scancel signal every process of the group: workers must stay quiet."""
    bids, _ = data
    proc = subprocess.Popen([sys.executable, "-m", "bidsapp.cli.run", str(bids), str(tmp_path / "o"),
                             "participant", "--high-pass", "0.01", "--nprocs", "2"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    psutil = pytest.importorskip("psutil")
    deadline = time.time() + 60
    while len(psutil.Process(proc.pid).children()) < 2 and time.time() < deadline:
        time.sleep(0.05)
    time.sleep(1.0)
    os.killpg(proc.pid, signum)
    _, err = proc.communicate(timeout=60)
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert proc.returncode == code and len(lines) == 1 and lines[0].startswith("bidsapp: interrupted"), err


def test_streamed_outputs_leave_no_nested_temporaries(tmp_path):
    from bidsapp.core.io import write_nifti_series, write_tsv_rows

    target = tmp_path / ".x.abc.tmp.tsv.gz"
    write_tsv_rows(target, ["a"], iter([np.zeros((2, 1), np.float32)]), atomic=False)
    nii = tmp_path / ".y.abc.tmp.nii.gz"
    write_nifti_series(nii, iter([np.zeros((2, 2, 2), np.float32)]), shape=(2, 2, 2), n_volumes=1,
                       affine=np.eye(4), t_r=2.0, atomic=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == [target.name, nii.name]


def test_symlinked_inputs_are_named_where_they_are_found(tmp_path):
    """DataLad / git-annex datasets: URIs name the file in the dataset, not its annex object."""
    from bidsapp.derivatives import source_uri

    raw = tmp_path / "bids"
    annex = raw / ".git" / "annex" / "objects" / "ab"
    annex.mkdir(parents=True)
    (annex / "obj").write_text("x")
    func = raw / "derivatives" / "fmriprep" / "sub-01" / "func"
    func.mkdir(parents=True)
    link = func / "sub-01_task-a_desc-preproc_bold.nii.gz"
    link.symlink_to(os.path.relpath(annex / "obj", func))
    roots = {"fmriprep": raw / "derivatives" / "fmriprep", "raw": raw}
    assert source_uri(link, roots) == "bids:fmriprep:sub-01/func/sub-01_task-a_desc-preproc_bold.nii.gz"


def test_zero_padded_and_plain_run_labels_are_one_run(data, tmp_path, capsys):
    bids, _ = data
    fmriprep, func = _sub01_fmriprep(bids, tmp_path)
    for f in list(func.glob("sub-01_task-faces_run-1_*")):
        shutil.copy(f, f.with_name(f.name.replace("_run-1_", "_run-01_")))
    assert main([str(bids), str(tmp_path / "o"), "participant", "--participant-label", "01",
                 "--fmriprep-dir", str(fmriprep)]) == 2
    err = capsys.readouterr().err
    assert "found twice" in err and "run-01_" in err and "run-1_" in err


@pytest.mark.parametrize("words", [["--high-pass", "-0.01"], ["--low-pass", "inf"], ["--high-pass", "nan"],
                                   ["--config", "NAN"]])
def test_bad_cut_offs_are_refused_by_the_parser(data, tmp_path, capsys, words):
    bids, _ = data
    if words[-1] == "NAN":
        cfg = tmp_path / "nan.json"
        cfg.write_text('{"high_pass": NaN}')
        words = ["--config", str(cfg)]
    assert main([str(bids), str(tmp_path / "o"), "participant", *words]) == 2
    err = capsys.readouterr().err
    assert "must be" in err and not (tmp_path / "o").exists()
    if words[0] == "--config":
        assert str(cfg) in err and "'high_pass'" in err


def test_group_level_names_incomplete_runs(data, out, capsys):
    bids, _ = data
    (out / SUB1 / f"{STEM}_timeseries.json").unlink()
    with pytest.warns(UserWarning, match=f"1 run\\(s\\) have no sidecar .*{STEM}"):
        assert main([str(bids), str(out), "group"]) == 0

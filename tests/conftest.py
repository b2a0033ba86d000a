"""Shared fixtures: generated fMRIPrep-like data, a TemplateFlow-layout folder, small images."""

from __future__ import annotations

import os
import shutil
import tempfile
import warnings
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from bidsapp.demo import make_dataset

NILEARN_DATA = None

#: the environment variable holding the test session's private temporary folder (set by the controller)
SESSION_TMP = "BIDSAPP_TEST_SESSION_TMP"


@pytest.hookimpl(trylast=True)
def pytest_configure(config):
    """The controller (not an xdist worker) gives the session a private temporary folder: every worker,
    subprocess and bidsapp invocation of the session inherits it as ``$TMPDIR``, so what a test leaves
    outside its ``tmp_path`` is found by :func:`pytest_sessionfinish` (and not mixed with other sessions')."""
    if hasattr(config, "workerinput") or os.environ.get(SESSION_TMP):
        return
    config._tmp_path_factory.getbasetemp()  # pytest's own base folder stays in the system temporary folder
    private = tempfile.mkdtemp(prefix="bidsapp-tests-tmp-")
    os.environ[SESSION_TMP] = os.environ["TMPDIR"] = private
    tempfile.tempdir = None  # this process too (tests run in it with -n 0)
    config._bidsapp_session_tmp = private


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item, nextitem):
    """A test that leaves the process in another working folder (or in one that was removed), once its fixtures
    are torn down, fails there and the folder is restored: otherwise every later test of its worker fails at
    ``os.getcwd()``, far from the cause. (A fixture of a wider scope that changes folder would be flagged too.)"""
    try:
        item._bidsapp_cwd = os.getcwd()
    except OSError:  # left so by a session-level failure: start from the root again
        os.chdir(item.config.rootpath)
        item._bidsapp_cwd = os.getcwd()
    return (yield)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_teardown(item, nextitem):
    try:
        return (yield)
    finally:  # also after a failing teardown
        before = getattr(item, "_bidsapp_cwd", None)
        try:
            after = os.getcwd()
        except OSError:
            after = None
        if before is not None and after != before:
            os.chdir(before)
            raise AssertionError(f"the test left the process's working folder at {after or 'a removed folder'} "
                                 f"(was {before})")


def pytest_sessionfinish(session, exitstatus):
    """A green session leaves nothing in the temporary folder: no bidsapp work folders (``KEPT`` ones
    included), no temporary trees. Checked in the controller only (xdist workers return here at once)."""
    private = getattr(session.config, "_bidsapp_session_tmp", None)
    if private is None or not os.path.isdir(private):
        return
    left = sorted(os.listdir(private))
    if exitstatus == 0 and left:
        reporter = session.config.pluginmanager.get_plugin("terminalreporter")
        line = (f"tests left {len(left)} item(s) in the temporary folder {private} (point their TMPDIR or "
                f"--work-dir into tmp_path): {', '.join(left[:10])}")
        if reporter is not None:
            reporter.ensure_newline()
            reporter.write_line(f"ERROR: {line}", red=True)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
        return  # kept for inspection
    if exitstatus == 0 or not left:
        shutil.rmtree(private, ignore_errors=True)


@pytest.fixture(autouse=True)
def _tmpdir_in_tmp_path(tmp_path, monkeypatch):
    """Each test's temporary files (bidsapp's work folders, kept ones of failing runs included) go to a
    folder of its own beside its ``tmp_path`` (``<tmp_path>-tmp``: tests may list ``tmp_path``), in pytest's
    base folder, removed after a green session; subprocesses inherit ``$TMPDIR``."""
    tmp = tmp_path.with_name(f"{tmp_path.name}-tmp")
    tmp.mkdir()
    monkeypatch.setenv("TMPDIR", str(tmp))
    monkeypatch.setattr(tempfile, "tempdir", None)
    yield


def nilearn_data_dir() -> Path:
    import nilearn

    return Path(nilearn.__file__).parent


@pytest.fixture(scope="session")
def demo(tmp_path_factory):
    """The demo dataset (2 participants x 2 runs, one with a session) and its ground truth."""
    root = tmp_path_factory.mktemp("demo") / "bids"
    runs = make_dataset(root)
    return root, runs


@pytest.fixture(scope="session")
def tf_home(tmp_path_factory):
    """A TemplateFlow-layout folder built from the MNI152 templates that nilearn ships."""
    from nilearn.image import resample_img

    home = tmp_path_factory.mktemp("templateflow")
    tpl = home / "tpl-MNI152NLin2009cAsym"
    tpl.mkdir()
    data = nilearn_data_dir() / "datasets" / "data"
    t1 = nib.load(data / "mni_icbm152_t1_tal_nlin_sym_09a_converted.nii.gz")
    brain = nib.Nifti1Image((np.asanyarray(t1.dataobj) > 0).astype(np.uint8), t1.affine)
    images = {
        "desc-brain_mask": brain,
        "label-GM_probseg": nib.load(data / "mni_icbm152_gm_tal_nlin_sym_09a_converted.nii.gz"),
        "label-WM_probseg": nib.load(data / "mni_icbm152_wm_tal_nlin_sym_09a_converted.nii.gz"),
    }
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for name, img in images.items():
            nib.save(img, tpl / f"tpl-MNI152NLin2009cAsym_res-01_{name}.nii.gz")
            interp = "nearest" if name.startswith("desc") else "continuous"
            res2 = resample_img(img, target_affine=np.diag([2, 2, 2]) @ np.eye(3), interpolation=interp,
                                force_resample=True, copy_header=True)
            nib.save(res2, tpl / f"tpl-MNI152NLin2009cAsym_res-02_{name}.nii.gz")
    return home


def write_bold(path: Path, data: np.ndarray, affine=None, dtype=np.float32, slope=None) -> Path:
    """Save a 4D array as NIfTI (optionally scaled integers)."""
    affine = np.diag([3.0, 3.0, 3.5, 1.0]) if affine is None else affine
    img = nib.Nifti1Image(data.astype(dtype), affine)
    if slope is not None:
        img.header.set_slope_inter(slope, 10.0)
    nib.save(img, path)
    return path


@pytest.fixture
def small_bold(tmp_path):
    """A 4D float32 .nii.gz with a brain-like blob on a zero background, and its brain."""
    rng = np.random.default_rng(0)
    shape = (20, 23, 19)
    grid = np.indices(shape).astype(float)
    c = [(s - 1) / 2 for s in shape]
    brain = sum(((g - ci) / (0.35 * s)) ** 2 for g, ci, s in zip(grid, c, shape)) <= 1
    n = 60
    data = np.zeros(shape + (n,), np.float32)
    data[brain] = (800 + 200 * rng.random(brain.sum()))[:, None] + rng.normal(0, 10, (brain.sum(), n))
    path = write_bold(tmp_path / "bold.nii.gz", data)
    return path, brain, data


@pytest.fixture(scope="session")
def demo_outputs(tmp_path_factory):
    """The folder where ``bidsapp-demo`` ran (demo dataset + outputs, LSS betas included)."""
    from bidsapp.demo import main

    base = tmp_path_factory.mktemp("demo-outputs")
    assert main([str(base / "bidsapp-demo-output"), "--nprocs", "2"]) == 0
    return base


@pytest.fixture(scope="session")
def atlas_outputs(tmp_path_factory):
    """The demo dataset (40 volumes; 2 participants, 4 runs) and its outputs in the demo's six-region atlas with
    Pearson correlation matrices: ``(bids, out, atlas)``. Tests only read them (copy them to change them)."""
    from bidsapp.cli.run import main
    from bidsapp.demo import write_demo_atlas

    base = tmp_path_factory.mktemp("atlas-outputs")
    make_dataset(base / "bids", n_volumes=40)
    atlas = write_demo_atlas(base)
    code = main([str(base / "bids"), str(base / "out"), "participant", "--atlas", str(atlas), "--atlas-labels",
                 str(atlas.with_name("atlas-demo_dseg.tsv")), "--connectivity", "correlation", "--nprocs", "1",
                 "--work-dir", str(base / "work")])
    assert code == 0
    return base / "bids", base / "out", atlas

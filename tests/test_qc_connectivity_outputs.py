"""End to end: QC metrics in the run sidecar, group_runs.tsv and the loader; region coverage and
--min-coverage; --connectivity matrices (BIDS _relmat.tsv) equal to nilearn; dataset(kind="connectivity")."""

from __future__ import annotations

import json

import nibabel as nib
import numpy as np
import pytest

MEASURES = {"PearsonCorrelation": "correlation", "PartialCorrelation": "partial correlation",
            "Covariance": "covariance"}


@pytest.fixture(scope="module")
def blocks_run(demo_outputs, tmp_path_factory):
    """A 7-region atlas on the demo's grid (regions 1-6 split the brain, region 7 is mostly outside it) and
    sub-01's atlas outputs with every connectivity measure and Fisher z."""
    from bidsapp.cli.run import main

    base = tmp_path_factory.mktemp("qc-connectivity")
    bids = demo_outputs / "bidsapp-demo-output" / "bids"
    mask = nib.load(next(bids.rglob("sub-01_task-faces_run-1_space-*_desc-brain_mask.nii.gz")))
    brain = np.asanyarray(mask.dataobj) > 0
    ijk = np.indices(brain.shape)
    where = np.array(np.nonzero(brain))
    cx, (y1, y2) = np.median(where[0]), np.percentile(where[1], [33, 67])
    atlas = 1 + (ijk[0] > cx) + 2 * ((ijk[1] > y1).astype(int) + (ijk[1] > y2))  # 6 regions over the brain
    atlas = np.where(brain, atlas, 0)
    edge = np.argwhere(brain)[:3]  # region 7: three brain voxels and a slab outside the brain
    outside = np.argwhere(~brain)[:60]
    atlas[tuple(edge.T)] = 7
    atlas[tuple(outside.T)] = 7
    nib.save(nib.Nifti1Image(atlas.astype(np.int16), mask.affine), base / "atlas-blocks_dseg.nii.gz")
    (base / "atlas-blocks_dseg.tsv").write_text("index\tname\n" + "".join(f"{k}\tR{k}\n" for k in range(1, 8)))
    out = base / "out"
    code = main([str(bids), str(out), "participant", "--participant-label", "01", "--nprocs", "1",
                 "--atlas", str(base / "atlas-blocks_dseg.nii.gz"), "--atlas-labels",
                 str(base / "atlas-blocks_dseg.tsv"), "--connectivity", "correlation",
                 "partial-correlation", "covariance", "--fisher-z", "--trial-estimates", "lss",
                 "--work-dir", str(base / "work")])
    assert code == 0
    return bids, out, atlas, brain


def test_poorly_covered_region_is_a_nan_column_with_a_reason(blocks_run):
    import bidsapp

    bids, out, atlas, brain = blocks_run
    run = bidsapp.load(out, subject="01", run=1, atlas="blocks")
    f = run.features.set_index("name")
    for label, name in zip(run.features["label"], run.features["name"]):
        assert f.loc[name, "coverage"] == pytest.approx(((atlas == label) & brain).sum() / (atlas == label).sum(),
                                                        abs=1e-6)
    poor = run.features["coverage"] < 0.5
    assert poor.tolist() == (run.features["name"] == "R7").tolist()
    X = np.asarray(run.X)
    assert np.isnan(X[:, poor]).all() and np.isfinite(X[:, ~poor]).all()
    assert "--min-coverage 0.5" in f.loc["R7", "excluded"] and f["excluded"].isna().sum() == len(f) - 1
    desc = json.loads(next(run.folder.glob(f"{run.stem}_features.json")).read_text())
    assert {"coverage", "excluded"} <= set(desc)
    ds = bidsapp.dataset(out, kind="betas", subject="01", atlas="blocks")  # NaN stays in its own column
    assert np.isnan(ds.X[:, poor]).all() and np.isfinite(ds.X[:, ~poor]).all()
    assert len(ds.qc) == 2 and (ds.qc["dof"] == [bidsapp.load(out, subject="01", run=r, atlas="blocks").qc[
        "DegreesOfFreedom"] for r in (1, 2)]).all()


def test_connectivity_matrices_equal_nilearn(blocks_run):
    from nilearn.connectome import ConnectivityMeasure

    import bidsapp

    bids, out, *_ = blocks_run
    run = bidsapp.load(out, subject="01", run=1, atlas="blocks")
    X = np.asarray(run.X, dtype=np.float64)
    ok = np.isfinite(X).all(axis=0)
    listed = {f["Path"] for f in run.meta["OutputFiles"]}
    names = run.features["name"].tolist()
    for meas, kind in MEASURES.items():
        path = run.folder / f"{run.stem}_meas-{meas}_relmat.tsv"
        assert path.name in listed and path.with_suffix(".json").name in listed
        side = json.loads(path.with_suffix(".json").read_text())
        table = np.genfromtxt(path, delimiter="\t", skip_header=1, missing_values="n/a", filling_values=np.nan)
        header = path.read_text().splitlines()[0].split("\t")
        assert header == ["node", *names]
        m = table[:, 1:]
        assert np.isnan(m[~ok]).all() and np.isnan(m[:, ~ok]).all()
        ref = ConnectivityMeasure(kind=kind).fit_transform([X[:, ok]])[0]
        got = m[np.ix_(ok, ok)]
        if kind != "covariance":
            assert side["FisherZ"] is True and np.isnan(np.diag(got)).all()
            off = ~np.eye(ok.sum(), dtype=bool)
            np.testing.assert_allclose(np.tanh(got[off]), ref[off], atol=1e-6)
        else:
            assert side["FisherZ"] is False
            np.testing.assert_allclose(got, ref, atol=1e-6 * np.abs(ref).max())
        assert side["ExcludedNodes"] == ["R7"] and side["NumberOfSamples"] == X.shape[0]


def test_qc_in_sidecar_group_table_and_loader(blocks_run):
    import bidsapp
    from bidsapp.cli.run import main
    from bidsapp.core.qc import QC_FIELDS

    bids, out, *_ = blocks_run
    run = bidsapp.load(out, subject="01", run=1, atlas="blocks")
    qc = run.meta["QC"]
    assert set(qc) >= set(QC_FIELDS) - {"TrialsEstimated"}  # estimated trials: only with --trial-estimates
    assert all(set(v) == {"Value", "Units"} for v in qc.values())
    samples = run.samples
    steady = ~samples["non_steady_state"]
    fd = samples.loc[steady, "framewise_displacement"].dropna()
    assert qc["FramewiseDisplacementMean"]["Value"] == pytest.approx(fd.mean(), rel=1e-9)
    assert qc["FramewiseDisplacementMax"]["Value"] == pytest.approx(fd.max(), rel=1e-9)
    assert qc["CensoredVolumeCount"]["Value"] == int((~samples["kept"] & steady).sum())
    assert qc["DegreesOfFreedomLost"]["Value"] == len(samples) - run.meta["DegreesOfFreedom"]
    assert qc["TrialsValidSegments"]["Value"] + qc["TrialsInvalidSegments"]["Value"] == len(run.trials_table)
    assert qc["TrialsValidSegments"]["Value"] == int(run.trials_table["valid"].sum())
    assert qc["FramewiseDisplacementMean"]["Units"] == "mm"
    assert run.qc["FramewiseDisplacementMean"] == qc["FramewiseDisplacementMean"]["Value"]  # loader: a dict
    assert main([str(bids), str(out), "group"]) == 0
    import pandas as pd

    table = pd.read_csv(out / "group_runs.tsv", sep="\t", na_values="n/a")
    row = table[table["run"] == run.stem].iloc[0]
    assert row["censored_fraction"] == pytest.approx(qc["CensoredFraction"]["Value"], rel=1e-6)
    assert row["fd_dvars_correlation_after"] == pytest.approx(
        qc["FramewiseDisplacementDVARSCorrelationAfter"]["Value"], rel=1e-5)
    described = json.loads((out / "group_runs.json").read_text())
    assert set(table.columns) <= set(described) and described["censored_fraction"]["Units"] == "fraction"


def test_connectivity_dataset_predicts_across_participants(blocks_run, tmp_path):
    import bidsapp
    from bidsapp.cli.run import main

    bids, out, *_ = blocks_run
    assert main([str(bids), str(out), "participant", "--participant-label", "02", "--nprocs", "1",
                 "--atlas", str(out.parent / "atlas-blocks_dseg.nii.gz"), "--atlas-labels",
                 str(out.parent / "atlas-blocks_dseg.tsv"), "--connectivity", "correlation",
                 "partial-correlation", "covariance", "--fisher-z", "--trial-estimates", "lss",
                 "--work-dir", str(out.parent / "work")]) == 0
    ds = bidsapp.dataset(out, kind="connectivity", y="age", atlas="blocks", measure="PearsonCorrelation")
    n = 6  # regions with a series (R7 is NaN)
    assert ds.X.shape == (4, 7 * 6 // 2) and np.isfinite(ds.X[:, ds.features["node_a"].ne("R7")
                                                              & ds.features["node_b"].ne("R7")]).all()
    assert n * (n - 1) // 2 == int(np.isfinite(ds.X[0]).sum())
    assert list(ds.groups) == ["sub-01", "sub-01", "sub-02", "sub-02"]
    assert ds.table["fd_mean"].notna().all() and list(ds.table["participant_id"]) == list(ds.groups)
    ages = dict(line.split("\t")[:2] for line in (bids / "participants.tsv").read_text().splitlines()[1:])
    assert [float(a) for a in ds.y] == [float(ages[g]) for g in ds.groups]
    run = bidsapp.load(out, subject="01", run=1, atlas="blocks")
    m = np.genfromtxt(run.folder / f"{run.stem}_meas-PearsonCorrelation_relmat.tsv", delimiter="\t",
                      skip_header=1, missing_values="n/a", filling_values=np.nan)[:, 1:]
    i, j = np.triu_indices(7, k=1)
    np.testing.assert_array_equal(ds.X[0], m[i, j])
    with pytest.raises(ValueError, match="no column 'height'.*participants.tsv"):
        bidsapp.dataset(out, kind="connectivity", y="height", atlas="blocks", measure="PearsonCorrelation")
    (tmp_path / "participants.tsv").write_text("participant_id\theight\nsub-01\t170\nsub-02\t180\n")
    ds = bidsapp.dataset(out, kind="connectivity", y="height", atlas="blocks", measure="PearsonCorrelation",
                         bids_dir=tmp_path)
    assert [float(v) for v in ds.y] == [170, 170, 180, 180]


def test_connectivity_on_voxels_refused_before_the_run(demo_outputs, tmp_path, capsys):
    from bidsapp.cli.run import main

    bids = demo_outputs / "bidsapp-demo-output" / "bids"
    code = main([str(bids), str(tmp_path / "out"), "participant", "--participant-label", "01", "--nprocs", "1",
                 "--connectivity", "correlation", "--work-dir", str(tmp_path / "work")])
    assert code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert "--connectivity" in err[-1] and "--atlas" in err[-1]
    assert not list((tmp_path / "out").rglob("sub-01*"))

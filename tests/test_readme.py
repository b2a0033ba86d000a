"""Every code block of README.md, CONTRIBUTING.md and the documentation pages (docs/) is run or checked: python
blocks (``python``, and the docs' ``{exec-python}`` blocks, which the site build also runs) against the demo outputs.

A shell block needs a marker on the line before it, ``<!-- readme-test: KIND (reason) -->``:
``demo`` (the demo command: its entry point runs here), ``ci`` (verbatim in .ci/run), ``cli`` (every bidsapp
command line in it is parsed by bidsapp's parser) or ``skip`` (with the reason). ``json`` and ``toml`` blocks are
config files: bidsapp's parser reads each. Python blocks are executed from the folder where ``bidsapp-demo`` ran,
and each must define a variable checked below. Other Sphinx directives (``{include}``, ``{toctree}``, ...) are
not code.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

ROOT = Path(__file__).parents[1]
MARKER = re.compile(r"<!-- readme-test: (\w+)(.*?)-->")


#: the pages whose code blocks are tested (README first: its blocks keep their place in the messages)
PAGES = [ROOT / "README.md", ROOT / "CONTRIBUTING.md",
         *sorted(p for p in (ROOT / "docs").rglob("*.md") if not {"_build", "_generated"} & set(p.parts))]


def readme_blocks() -> list[tuple[str, str, str | None, str, str]]:
    """(file:line, language, marker kind, marker text, code) of every fenced code block of :data:`PAGES`."""
    return [(f"{page.relative_to(ROOT)}:{line}", *rest) for page in PAGES for line, *rest in _blocks(page)]


def _blocks(page: Path) -> list[tuple[int, str, str | None, str, str]]:
    lines = page.read_text().splitlines()
    blocks, i = [], 0
    while i < len(lines):
        if lines[i].startswith("```"):
            lang, start = lines[i][3:].strip(), i
            j = i + 1
            while not lines[j].startswith("```"):
                j += 1
            prev = next((ln for ln in reversed(lines[:start]) if ln.strip()), "")
            m = MARKER.match(prev.strip())
            lang = "python" if lang == "{exec-python}" else lang
            if not lang.startswith("{"):  # a Sphinx directive other than exec-python is not code
                blocks.append((start + 1, lang, m.group(1) if m else None, m.group(2).strip() if m else "",
                               "\n".join(lines[start + 1:j])))
            i = j
        i += 1
    return blocks


BLOCKS = readme_blocks()
PYTHON = [b for b in BLOCKS if b[1] == "python"]
CONFIG = [b for b in BLOCKS if b[1] in ("json", "toml")]
SHELL = [b for b in BLOCKS if b[1] not in ("python", "json", "toml")]


@pytest.fixture(scope="module")
def demo_dir(demo_outputs):
    return demo_outputs


@pytest.fixture(scope="module")
def namespaces(demo_dir):
    """Run every python block (each in its own namespace, as a user copying one block would)."""
    import os

    old = os.getcwd()
    os.chdir(demo_dir)
    out = []
    try:
        for line, _, _, _, code in PYTHON:
            ns: dict = {}
            exec(compile(code, line, "exec"), ns)  # noqa: S102 - the README's own code
            out.append(ns)
    finally:
        os.chdir(old)
    return out


def test_readme_has_python_and_marked_shell_blocks():
    assert len(PYTHON) >= 10 and len(CONFIG) >= 2
    assert any(line.startswith("README.md:") and kind == "demo" for line, _, kind, *_ in SHELL)
    for line, lang, kind, reason, _ in SHELL:
        assert lang == "bash", f"{line}: block language {lang!r} has no test"
        assert kind in ("demo", "ci", "cli", "skip"), f"{line}: shell block without a readme-test marker"
        assert kind != "skip" or len(reason) > 10, f"{line}: skipped without a reason"


def test_config_blocks_are_read_by_the_parser(tmp_path):
    from bidsapp.cli.parser import config_values

    for line, lang, _, _, code in CONFIG:
        path = tmp_path / f"settings.{lang}"
        path.write_text(code)
        values = config_values(path)
        assert values, f"{line}: the config file sets nothing"


def _check_files(ns, _):
    assert [Path(f.filename).name.split("_")[2] for f in ns["files"]] == ["run-1", "run-2"]


def _check_run(ns, _):
    run = ns["run"]
    assert list(run.X.shape) == run.meta["Shape"] and len(run.features) == run.X.shape[1]
    assert isinstance(run.X, np.memmap) and run.samples["kept"].sum() == run.X.shape[0]


def _check_img(ns, _):
    run, img = ns["run"], ns["img"]
    mask = nib.load(run.mask_file)
    inside = np.asanyarray(mask.dataobj) > 0
    np.testing.assert_allclose(img.get_fdata()[inside], np.asarray(run.X).mean(axis=0), rtol=1e-6)
    assert np.allclose(img.affine, mask.affine) and (img.get_fdata()[~inside] == 0).all()


def _check_times(ns, _):
    times, run = ns["times"], ns["run"]
    t_r, start = run.meta["RepetitionTime"], run.meta["StartTime"]
    n_nss = int(run.samples["non_steady_state"].sum())
    assert len(times) == run.X.shape[0] and times.iloc[0] == pytest.approx(start + n_nss * t_r)


def _check_decoding(ns, demo_dir):
    assert ns["scores"].shape == (2,) and ns["scores"].min() >= 0.9  # the demo's face/house patterns differ
    w = ns["weights_img"].get_fdata()
    front = w[:, : w.shape[1] // 2].sum()  # faces drive the front of the active voxels, houses the back
    back = w[:, w.shape[1] // 2:].sum()
    assert list(ns["clf"].classes_) == ["face", "house"] and front < 0 < back
    assert (demo_dir / "face_vs_house_weights.nii.gz").is_file()


def _check_trial(ns, _):
    run = ns["run"]
    seg = int(run.trials_table.loc[3, "segment"])
    np.testing.assert_array_equal(ns["one_trial"], run.trials[seg])
    assert ns["one_trial"].shape == (len(run.meta["Trials"]["TrialOffsets"]), run.X.shape[1])
    assert 1 <= len(ns["volumes"]) <= 3


def _check_plain(ns, demo_dir):
    assert nib.load(demo_dir / "trial3_mean.nii.gz").shape == ns["inside"].shape
    assert ns["X"].shape[0] >= 1 and ns["segment"].ndim == 2


def _check_column_j(ns, _):
    run, col = ns["run"], ns["column_j"]
    bm = run.brain_models
    assert run.X.shape[1] == len(bm) == 91282 and col["structure"] == bm.name[ns["j"]]
    assert list(col[["i", "j", "k"]]) == list(bm.voxel[ns["j"]])  # column 60000 is a subcortical voxel


def _check_weights_cifti(ns, demo_dir):
    img = nib.load(demo_dir / "face_minus_house.dscalar.nii")
    np.testing.assert_allclose(np.asarray(img.dataobj)[0], ns["weights"], rtol=1e-6)
    assert len(img.header.get_axis(1)) == len(ns["ds"].features) == 91282
    for hemi in "LR":
        assert len(nib.load(demo_dir / f"mean_hemi-{hemi}.func.gii").darrays[0].data) == 10242


def _check_connectivity(ns, demo_dir):
    ds, predicted = ns["ds"], ns["predicted_age"]
    assert ds.X.shape == (4, 15) and np.isfinite(ds.X).all()  # 4 runs x 6 regions' upper triangle
    assert list(ds.groups) == ["sub-01", "sub-01", "sub-02", "sub-02"] and list(ds.y) == [24, 24, 31, 31]
    assert predicted.shape == (4,) and np.isfinite(predicted).all()


def _check_weight_map(ns, _):
    ds, data = ns["ds"], ns["weight_map"].get_fdata()
    ijk = ds.features[["i", "j", "k"]].to_numpy(int).T
    np.testing.assert_allclose(data[tuple(ijk)], ns["coef"], rtol=1e-6)
    assert np.count_nonzero(data) <= len(ds.features) and list(ns["top"]) == list(np.argsort(abs(ns["coef"]))[::-1][:5])


CHECKS = {"predicted_age": _check_connectivity, "column_j": _check_column_j, "weight_map": _check_weight_map,
          "weights_cifti": _check_weights_cifti,
          "files": _check_files, "img": _check_img, "times": _check_times, "scores": _check_decoding,
          "one_trial": _check_trial, "segment": _check_plain, "run": _check_run}


def test_every_python_block_runs_on_the_demo_and_is_checked(namespaces, demo_dir):
    for (line, *_), ns in zip(PYTHON, namespaces):
        checked = [name for name in CHECKS if name in ns]
        assert checked, f"{line}: python block defines none of {list(CHECKS)}"
        for name in checked:
            CHECKS[name](ns, demo_dir)


def test_plain_numpy_way_equals_the_loader(namespaces):
    """The numpy/csv fallback and the loader give the same trial segment and rows."""
    by_var = {name: ns for ns in namespaces for name in ("segment", "one_trial") if name in ns}
    plain, loader = by_var["segment"], by_var["one_trial"]
    np.testing.assert_array_equal(plain["segment"], loader["one_trial"])
    np.testing.assert_array_equal(plain["X"], loader["volumes"])


def _bidsapp_args(command: str) -> list[str] | None:
    tokens = shlex.split(command)
    if not tokens:
        return None
    if tokens[0] == "bidsapp":
        return tokens[1:]
    if tokens[:2] == ["docker", "run"]:
        image = next(i for i, t in enumerate(tokens) if t.startswith("bidsapp/bidsapp:"))
        return tokens[image + 1:]
    if tokens[:2] == ["apptainer", "run"]:
        image = next(i for i, t in enumerate(tokens) if t.endswith(".sif"))
        return tokens[image + 1:]
    return None


def test_shell_blocks(demo_dir):
    from bidsapp.cli.parser import build_parser

    pyproject = (ROOT / "pyproject.toml").read_text()
    ci = (ROOT / ".ci" / "run").read_text()
    n_parsed = 0
    for line, _, kind, _, code in SHELL:
        if kind == "demo":
            assert code.strip().endswith("bidsapp-demo") and 'bidsapp-demo = "bidsapp.demo:main"' in pyproject
            assert list((demo_dir / "bidsapp-demo-output").rglob("*_betas.npy"))  # the demo ran (fixture)
        elif kind == "ci":
            assert code.strip() in ci, f"{line}: command differs from .ci/run"
        elif kind == "cli":
            commands = [c.split("#")[0] for c in code.replace("\\\n", " ").splitlines()]
            parsed = [a for a in map(_bidsapp_args, commands) if a is not None]
            assert parsed, f"{line}: no bidsapp command found"
            for args in parsed:
                ns = build_parser().parse_args(args)
                assert ns.analysis_level in ("participant", "group")
                n_parsed += 1
    assert n_parsed >= 4

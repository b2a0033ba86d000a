"""Brain masks: given (fMRIPrep), computed from the data, or from a template.

The data-driven masks reproduce nilearn's ``compute_background_mask`` and
``compute_epi_mask`` (default parameters) voxel for voxel; template masks
follow ``compute_brain_mask(mask_type=...)`` (threshold 0.5, opening 2,
largest connected component) on TemplateFlow's MNI152NLin2009cAsym files.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import nibabel as nib
import numpy as np

from bidsapp.core.io import load_header, mean_volume
from bidsapp.core.names import MASK_STRATEGIES

AFFINE_TOLERANCE_MM = 1e-3
TEMPLATE = "MNI152NLin2009cAsym"
TEMPLATE_FILES = {
    "whole-brain": "desc-brain_mask",
    "gm": "label-GM_probseg",
    "wm": "label-WM_probseg",
}


def same_grid(shape_a, affine_a, shape_b, affine_b, tol: float = AFFINE_TOLERANCE_MM) -> bool:
    """True when two 3D grids have the same shape and affines within ``tol`` mm."""
    return tuple(shape_a[:3]) == tuple(shape_b[:3]) and np.allclose(affine_a, affine_b, atol=tol, rtol=0)


def describe_grid(shape, affine) -> str:
    """Shape, voxel size, origin and axis directions of a grid, for error messages."""
    affine = np.asarray(affine, dtype=float)
    sizes = np.round(nib.affines.voxel_sizes(affine), 3).tolist()
    origin = np.round(affine[:3, 3], 3).tolist()
    codes = "".join(nib.aff2axcodes(affine))
    return f"shape {tuple(int(x) for x in shape[:3])}, voxel size {sizes} mm, origin {origin} mm, axes {codes}"


def resample_to_grid(
    data: np.ndarray, affine: np.ndarray, target_shape, target_affine: np.ndarray, *, order: int
) -> np.ndarray:
    """Resample a 3D array onto another grid (world coordinates preserved).

    Parameters
    ----------
    order : int
        Spline order: 0 nearest neighbour (masks, labels), 1 linear, 3 cubic.
    """
    from scipy import ndimage  # imported on use (~0.1 s): a run whose mask is on the BOLD grid needs none of it

    # voxel (target) -> world -> voxel (source)
    transform = np.linalg.solve(affine, target_affine)
    out = ndimage.affine_transform(
        np.asarray(data, dtype=data.dtype if data.dtype.kind == "f" else np.float64),
        transform[:3, :3],
        offset=transform[:3, 3],
        output_shape=tuple(int(s) for s in target_shape[:3]),
        order=order,
        mode="constant",
        cval=0.0,
    )
    return out


def load_mask(
    mask_path: str | os.PathLike,
    bold_shape,
    bold_affine: np.ndarray,
    *,
    resample: bool = False,
) -> np.ndarray:
    """Load a given binary mask and check it matches the BOLD grid.

    Parameters
    ----------
    mask_path : path
        3D mask image (e.g. fMRIPrep ``desc-brain_mask``).
    bold_shape, bold_affine
        Grid of the run.
    resample : bool, default=False
        If the grids differ, resample the mask with nearest neighbour instead
        of raising.

    Returns
    -------
    mask : numpy.ndarray of bool, shape bold_shape[:3]
    """
    img = load_header(mask_path, ndim=3)
    data = np.asanyarray(img.dataobj)
    if data.ndim == 4:
        data = data[..., 0]
    if not np.all(np.isfinite(data)):
        raise ValueError(f"{mask_path}: mask contains NaN or infinite values; it must be binary.")
    values = np.unique(data)
    if values.size > 2:
        raise ValueError(
            f"{mask_path}: mask is not binary ({values.size} distinct values, e.g. {values[:4]}). "
            "Pass a binary mask, or threshold it first."
        )
    # two values: the smaller is background (as nilearn's load_mask_img)
    mask = data > values[0] if values.size == 2 else data != 0
    if not same_grid(mask.shape, img.affine, bold_shape, bold_affine):
        if not resample:
            raise ValueError(
                f"{mask_path}: mask grid ({describe_grid(mask.shape, img.affine)}) differs from the BOLD "
                f"grid ({describe_grid(bold_shape, bold_affine)}). Use the mask of the same space and "
                "resolution, or allow nearest-neighbour resampling (resample=True)."
            )
        mask = resample_to_grid(mask.astype(np.uint8), img.affine, bold_shape, bold_affine, order=0) > 0
    if not mask.any():
        raise ValueError(f"{mask_path}: the mask is empty on the BOLD grid; check the file and its space.")
    return mask


def _largest_connected_component(mask: np.ndarray) -> np.ndarray:
    from scipy import ndimage

    labels, n = ndimage.label(mask)
    if n <= 1:
        return mask.astype(bool)
    counts = np.bincount(labels.ravel())
    counts[0] = 0
    return labels == counts.argmax()


def _post_process(mask: np.ndarray, *, opening: int, connected: bool, what: str) -> np.ndarray:
    from scipy import ndimage

    if opening:
        mask = ndimage.binary_erosion(mask, iterations=opening)
    if not mask.any():
        raise ValueError(f"The computed {what} mask is empty. {_EMPTY_HINT[what]}")
    if connected:
        mask = _largest_connected_component(mask)
    if opening:
        mask = ndimage.binary_dilation(mask, iterations=2 * opening)
        mask = ndimage.binary_erosion(mask, iterations=opening)
    return mask.astype(bool)


_EMPTY_HINT = {
    "background": "The images do not have a homogeneous background; use mask strategy 'epi' or 'fmriprep'.",
    "epi": "Are the data EPI images that were not detrended? Use mask strategy 'fmriprep'.",
    "template": "The run's field of view does not overlap the template; check the run's space.",
}


def _border(data: np.ndarray, b: int) -> np.ndarray:
    return np.concatenate(
        [
            data[:b].ravel(), data[-b:].ravel(),
            data[:, :b].ravel(), data[:, -b:].ravel(),
            data[:, :, :b].ravel(), data[:, :, -b:].ravel(),
        ]
    )


def compute_background_mask(
    mean: np.ndarray, *, border_size: int = 2, connected: bool = False, opening: int = 0
) -> np.ndarray:
    """Mask of voxels whose temporal mean differs from the background value.

    Equal to ``nilearn.masking.compute_background_mask`` with its defaults:
    the background is the median of the ``border_size`` outer voxels (or NaN
    if any border voxel is NaN).

    Parameters
    ----------
    mean : numpy.ndarray, shape (nx, ny, nz)
        Temporal mean image (:func:`bidsapp.core.io.mean_volume`).

    Returns
    -------
    mask : numpy.ndarray of bool
    """
    border = _border(mean, border_size)
    if np.isnan(border).any():
        mask = ~np.isnan(mean)
    else:
        mask = mean != np.median(border)
    return _post_process(mask, opening=opening, connected=connected, what="background")


def _gaussian_1mm_in_voxels(data: np.ndarray, fwhm: float) -> np.ndarray:
    """nilearn's ``smooth_array(arr, affine=eye(4), fwhm)`` on a 3D array."""
    from scipy import ndimage

    sigma = fwhm / np.sqrt(8 * np.log(2))
    out = data.copy()
    out[~np.isfinite(out)] = 0
    for axis in range(3):
        ndimage.gaussian_filter1d(out, sigma, output=out, axis=axis)
    return out


def compute_epi_mask(
    mean: np.ndarray,
    *,
    lower_cutoff: float = 0.2,
    upper_cutoff: float = 0.85,
    connected: bool = True,
    opening: int = 2,
    exclude_zeros: bool = False,
) -> np.ndarray:
    """EPI brain mask from the histogram of the mean image (Nichols' method).

    Equal to ``nilearn.masking.compute_epi_mask`` with its defaults: the mean
    is smoothed (1 voxel FWHM), the threshold is placed at the largest gap of
    the sorted intensities between the ``lower_cutoff`` and ``upper_cutoff``
    fractions, then the mask is opened and reduced to its largest component.

    Parameters
    ----------
    mean : numpy.ndarray, shape (nx, ny, nz)
        Temporal mean image.

    Returns
    -------
    mask : numpy.ndarray of bool
    """
    if not 0 <= lower_cutoff < upper_cutoff <= 1:
        raise ValueError(f"EPI mask cut-offs must satisfy 0 <= lower < upper <= 1, got {lower_cutoff}, {upper_cutoff}.")
    nan_mask = np.isnan(mean)
    smoothed = _gaussian_1mm_in_voxels(mean, 1) if opening else mean.copy()
    smoothed[nan_mask] = np.nan
    smoothed[~np.isfinite(smoothed)] = 0
    values = np.sort(smoothed.ravel())
    if exclude_zeros:
        values = values[values != 0]
    lo = int(np.floor(lower_cutoff * len(values)))
    hi = min(int(np.floor(upper_cutoff * len(values))), len(values) - 1)
    delta = values[lo + 1 : hi + 1] - values[lo:hi]
    ia = delta.argmax()
    threshold = 0.5 * (values[ia + lo] + values[ia + lo + 1])
    return _post_process(smoothed >= threshold, opening=opening, connected=connected, what="epi")


def templateflow_home() -> Path:
    """TemplateFlow's local cache: ``$TEMPLATEFLOW_HOME`` or ``~/.cache/templateflow``."""
    env = os.environ.get("TEMPLATEFLOW_HOME")
    return Path(env) if env else Path.home() / ".cache" / "templateflow"


def template_resolution(bold_affine: np.ndarray) -> int:
    """TemplateFlow resolution used for a run: 2 mm for voxels >= 2 mm, else 1 mm."""
    return 2 if nib.affines.voxel_sizes(bold_affine).min() >= 2 - 1e-3 else 1


def template_path(mask_type: str, resolution: int, home: Path | None = None) -> Path:
    """Path of a TemplateFlow file in the local cache (no download)."""
    if mask_type not in TEMPLATE_FILES:
        raise ValueError(f"Unknown template mask type '{mask_type}'; use one of {sorted(TEMPLATE_FILES)}.")
    home = home or templateflow_home()
    name = f"tpl-{TEMPLATE}_res-{resolution:02d}_{TEMPLATE_FILES[mask_type]}.nii.gz"
    return home / f"tpl-{TEMPLATE}" / name


def prefetch_command(resolution: int) -> str:
    """The one command that fills the local TemplateFlow cache for bidsapp."""
    return f"bidsapp-fetch-templates --resolution {resolution}"


def require_template(mask_type: str, bold_affine: np.ndarray, home: Path | None = None) -> Path:
    """The TemplateFlow file a run needs, or ``ValueError`` naming it and the prefetch command."""
    resolution = template_resolution(bold_affine)
    path = template_path(mask_type, resolution, home)
    if not path.is_file() or path.stat().st_size == 0:
        raise ValueError(
            f"TemplateFlow file {path} is missing from the local cache (TEMPLATEFLOW_HOME="
            f"{path.parent.parent}); bidsapp never downloads at run time. Prefetch it with: "
            f"{prefetch_command(resolution)}"
        )
    return path


def compute_template_mask(
    bold_shape,
    bold_affine: np.ndarray,
    *,
    mask_type: str = "whole-brain",
    space: str = TEMPLATE,
    threshold: float = 0.5,
    opening: int = 2,
    connected: bool = True,
    home: Path | None = None,
) -> tuple[np.ndarray, Path]:
    """Template mask (whole-brain, gm or wm) resampled to the run's grid.

    Parameters
    ----------
    bold_shape, bold_affine
        Grid of the run.
    mask_type : {"whole-brain", "gm", "wm"}
    space : str
        Space of the run (BIDS ``space-`` entity); must be MNI152NLin2009cAsym.
    threshold, opening, connected
        As ``nilearn.masking.compute_brain_mask``.
    home : Path or None
        TemplateFlow home; default :func:`templateflow_home`. Never downloads.

    Returns
    -------
    mask : numpy.ndarray of bool
    template_file : Path
        The TemplateFlow file used.
    """
    if space != TEMPLATE:
        raise ValueError(
            f"Template masks come from {TEMPLATE} but this run is in space '{space}': a template "
            "mask would not be aligned with it. Use runs in space MNI152NLin2009cAsym, or "
            "mask strategy 'fmriprep', 'epi' or 'background' for other spaces."
        )
    path = require_template(mask_type, bold_affine, home)
    img = load_header(path, ndim=3)
    data = np.asanyarray(img.dataobj).astype(np.float32)
    if data.ndim == 4:
        data = data[..., 0]
    data /= data.max()  # rescaled to [0, 1] as nilearn's load_mni152_*_template
    resampled = resample_to_grid(data, img.affine, bold_shape, bold_affine, order=3)
    mask = resampled >= threshold
    return _post_process(mask, opening=opening, connected=connected, what="template"), path




def _intersection(mask: np.ndarray, mask_file, others, shape, affine: np.ndarray, resample: bool):
    """``mask`` (of ``mask_file``) and each of ``others`` on the run's grid, and the sidecar's description."""
    for other in others:
        mask = mask & load_mask(other, shape, affine, resample=resample)
    if not mask.any():
        raise ValueError(f"{mask_file}: this run's fMRIPrep brain mask and those of the runs fitted with it "
                         f"({', '.join(Path(m).name for m in others)}) have no voxel in common; check their space.")
    names = ", ".join(Path(m).name for m in [mask_file, *others])
    return mask, (f"intersection of the fMRIPrep brain masks {names} (the runs whose trial estimates are fitted "
                  "together take the same voxels)")


def compute_mask(
    bold_file: str | os.PathLike, mask_file: str | os.PathLike | None, strategy: str,
    space: str = TEMPLATE, resample_mask: bool = False, joined_masks: Sequence[str | os.PathLike] = (),
) -> tuple[np.ndarray, np.ndarray, str, str | None]:
    """The run's mask by strategy: a given (fMRIPrep) mask, background, EPI or template.

    Parameters
    ----------
    bold_file : path
        4D BOLD run (its grid is the mask's grid).
    mask_file : path or None
        Brain mask for ``strategy="fmriprep"``.
    strategy : {"fmriprep", "background", "epi", "whole-brain-template", "gm-template", "wm-template"}
    space : str
        Space of the run (template strategies need ``TEMPLATE``).
    resample_mask : bool
        Nearest-neighbour resampling of a given mask on another grid.
    joined_masks : sequence of path
        With ``strategy="fmriprep"``: the fMRIPrep masks of the other runs whose trial estimates are fitted with
        this one (a joined model takes the same columns from every run); the mask is the intersection of all.

    Returns
    -------
    mask : numpy.ndarray of bool, shape (nx, ny, nz)
    affine : numpy.ndarray, shape (4, 4)
    source : str
        How the mask was obtained (for the sidecar).
    template_file : str or None
    """
    if strategy not in MASK_STRATEGIES:
        raise ValueError(f"Unknown mask strategy '{strategy}'; use one of {', '.join(MASK_STRATEGIES)}.")
    img = load_header(bold_file, ndim=4)
    shape, affine = img.shape[:3], img.affine
    template = None
    if strategy == "fmriprep":
        if mask_file is None:
            raise ValueError(
                f"{bold_file}: no fMRIPrep brain mask (desc-brain_mask) next to this run; "
                "use mask strategy 'epi' or 'background'."
            )
        mask = load_mask(mask_file, shape, affine, resample=resample_mask)
        source = f"fMRIPrep brain mask {Path(mask_file).name}"
        if joined_masks:
            mask, source = _intersection(mask, mask_file, joined_masks, shape, affine, resample_mask)
    elif strategy in ("background", "epi"):
        mean = mean_volume(bold_file)
        fn = compute_background_mask if strategy == "background" else compute_epi_mask
        mask = fn(mean)
        source = f"{strategy} mask computed from the temporal mean (nilearn compute_{strategy}_mask defaults)"
    else:
        mask_type = {"whole-brain-template": "whole-brain", "gm-template": "gm", "wm-template": "wm"}[strategy]
        mask, tpl = compute_template_mask(shape, affine, mask_type=mask_type, space=space)
        template = str(tpl)
        source = f"TemplateFlow {tpl.name} resampled to the run, threshold 0.5, opening 2"
    return mask, affine, source, template

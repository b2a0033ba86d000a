"""A small synthetic BOLD run with spatially smooth signals, shared by the maps and spheres tests."""

from __future__ import annotations

import numpy as np


def smooth_run(rng: np.random.Generator, n_volumes: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Float32 data (20 x 23 x 19 x ``n_volumes``) inside an ellipsoid brain: smooth noise of std ~600 around
    900 plus white noise (a region's mean keeps a realistic std), the brain, and a 3 x 3 x 3.5 mm affine."""
    from scipy import ndimage

    shape = (20, 23, 19)
    c = [(s - 1) / 2 for s in shape]
    brain = sum(((g - ci) / (0.35 * s)) ** 2 for g, ci, s in zip(np.indices(shape), c, shape)) <= 1
    noise = ndimage.gaussian_filter(rng.normal(size=shape + (n_volumes,)), (1.5, 1.5, 1.5, 0)) * 600
    data = np.where(brain[..., None], 900 + noise + 3 * rng.normal(size=shape + (n_volumes,)), 0).astype(np.float32)
    affine = np.diag([3.0, 3.0, 3.5, 1.0])
    affine[:3, 3] = [-30, -33, -31]
    return data, brain, affine

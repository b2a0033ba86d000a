"""TEST-ONLY TemplateFlow tree for offline image builds (CI): the three MNI152NLin2009cAsym files bidsapp
reads, at res-01 and res-02, on the real template grids, filled with smooth ellipsoids (NOT anatomy).

Usage: python .ci/make_test_templates.py DIR   (DIR becomes a TEMPLATEFLOW_HOME tree)
"""

import sys
from pathlib import Path

import nibabel as nib
import numpy as np

from bidsapp.core.masks import TEMPLATE, TEMPLATE_FILES, template_path

GRIDS = {1: ((193, 229, 193), 1.0), 2: ((97, 115, 97), 2.0)}  # MNI152NLin2009cAsym res-01, res-02


def main(home: Path) -> None:
    for res, (shape, vox) in GRIDS.items():
        affine = np.array([[vox, 0, 0, -96.0], [0, vox, 0, -132.0], [0, 0, vox, -78.0], [0, 0, 0, 1]])
        ijk = np.indices(shape).reshape(3, -1)
        x, y, z = (affine[:3, :3] @ ijk + affine[:3, 3:4]).reshape((3, *shape))
        r = np.sqrt((x / 70) ** 2 + ((y + 18) / 95) ** 2 + ((z - 10) / 75) ** 2)
        data = {
            "whole-brain": (r <= 1).astype(np.uint8),
            "gm": np.round(np.clip(1 - np.abs(r - 0.65) / 0.3, 0, 1), 2).astype(np.float32),
            "wm": np.round(np.clip(1 - r / 0.7, 0, 1), 2).astype(np.float32),
        }
        for mask_type in TEMPLATE_FILES:
            path = template_path(mask_type, res, home=home)
            path.parent.mkdir(parents=True, exist_ok=True)
            img = nib.Nifti1Image(data[mask_type], affine)
            img.header.set_xyzt_units("mm")
            nib.save(img, path)
    (home / "TEST_ONLY_FAKE_TEMPLATES.txt").write_text(
        f"Test-only {TEMPLATE} stand-ins made by .ci/make_test_templates.py: ellipsoids, not real templates.\n"
    )


if __name__ == "__main__":
    main(Path(sys.argv[1]))

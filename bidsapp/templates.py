"""``bidsapp-fetch-templates``: prefetch the TemplateFlow files bidsapp can use (needs internet).

bidsapp itself never downloads: at run time it reads these files from
``$TEMPLATEFLOW_HOME`` (see :func:`bidsapp.core.masks.template_path`).
"""

from __future__ import annotations

import argparse
import sys

from bidsapp.core.masks import TEMPLATE, TEMPLATE_FILES, template_path, templateflow_home


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="bidsapp-fetch-templates", description=__doc__)
    p.add_argument("--resolution", type=int, nargs="+", default=[1, 2], choices=[1, 2])
    args = p.parse_args(argv)
    from templateflow import api  # imported here: templateflow may touch the network

    for res in args.resolution:
        for mask_type, name in TEMPLATE_FILES.items():
            entities = dict(part.split("-") for part in name.split("_")[:-1])
            suffix = name.split("_")[-1]
            path = api.get(TEMPLATE, resolution=res, suffix=suffix, extension=".nii.gz", **entities)
            expected = template_path(mask_type, res)
            if not expected.is_file():
                print(f"bidsapp-fetch-templates: {expected} was not fetched (got {path}).", file=sys.stderr)
                return 1
            print(f"{mask_type:12s} res-{res:02d}: {expected}")
    print(f"TEMPLATEFLOW_HOME={templateflow_home()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

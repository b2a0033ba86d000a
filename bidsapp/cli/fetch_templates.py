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
    p.add_argument("--atlas", nargs="+", default=[], metavar="NAME[:desc-DESC]",
                   help="also fetch these atlases (dseg or probseg images and their label tables) for --space")
    p.add_argument("--space", default=TEMPLATE, help="template space of the --atlas files")
    args = p.parse_args(argv)
    from templateflow import api  # imported here: templateflow may touch the network

    for value in args.atlas:
        if fetch_atlas(api, args.space, value) != 0:
            return 1

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


def fetch_atlas(api, space: str, value: str) -> int:
    """Fetch one atlas by name (every resolution and desc matching) with its label tables."""
    from bidsapp.core.atlases import parse_name

    name, desc, res = parse_name(value)
    query = {"atlas": name, **({"desc": desc} if desc else {}), **({"resolution": res} if res else {})}
    files = [f for suffix in ("dseg", "probseg") for f in _listed(api.get(space, suffix=suffix, extension=".nii.gz",
                                                                          **query))]
    if not files:
        print(f"bidsapp-fetch-templates: TemplateFlow has no atlas {value} for tpl-{space}.", file=sys.stderr)
        return 1
    tables = {k: v for k, v in query.items() if k != "resolution"}
    for suffix in ("dseg", "probseg"):
        _listed(api.get(space, suffix=suffix, extension=".tsv", **tables))
    for f in files:
        print(f"atlas {value}: {f}")
    return 0


def _listed(found) -> list:
    return found if isinstance(found, list) else [found] if found else []


if __name__ == "__main__":
    sys.exit(main())

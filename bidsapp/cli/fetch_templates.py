"""``bidsapp-fetch-templates``: prefetch the TemplateFlow files bidsapp can use (needs internet).

bidsapp itself never downloads: at run time it reads these files from
``$TEMPLATEFLOW_HOME`` (see :func:`bidsapp.core.masks.template_path`).
"""

from __future__ import annotations

import argparse
import sys

from bidsapp.core.masks import TEMPLATE, TEMPLATE_FILES, template_path, templateflow_home

#: the atlases ``bidsapp-fetch-templates`` fetches by default (and so the container image holds), as
#: (template space, ``--atlas`` value); docs/getting-started.md lists them with what each adds to the image.
#: 2 mm only: DiFuMo in MNI152NLin6Asym is left out (100-350 MB a file there, 2-8 MB in MNI152NLin2009cAsym).
PREFETCHED_ATLASES: tuple[tuple[str, str], ...] = tuple(
    (space, f"Schaefer2018:desc-{parcels}Parcels{networks}Networks:res-2")
    for space in ("MNI152NLin2009cAsym", "MNI152NLin6Asym")
    for parcels in (100, 200, 300, 400, 500, 600, 800, 1000) for networks in (7, 17)
) + tuple(("MNI152NLin2009cAsym", f"DiFuMo:desc-{dims}dimensions:res-2") for dims in (64, 128, 256))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="bidsapp-fetch-templates", description=__doc__)
    p.add_argument("--resolution", type=int, nargs="+", default=[1, 2], choices=[1, 2])
    p.add_argument("--atlas", nargs="+", default=None, metavar="NAME[:desc-DESC][:res-RES]",
                   help="fetch these atlases (dseg or probseg images and their label tables) for --space instead "
                        "of the default set (Schaefer2018 100-1000 parcels, 7 and 17 networks, in "
                        "MNI152NLin2009cAsym and MNI152NLin6Asym; DiFuMo 64-256 in MNI152NLin2009cAsym; all at 2 mm)")
    p.add_argument("--no-atlases", action="store_true", help="fetch the template masks only")
    p.add_argument("--space", default=TEMPLATE, help="template space of the --atlas files")
    args = p.parse_args(argv)
    from templateflow import api  # imported here: templateflow may touch the network

    atlases = [] if args.no_atlases else PREFETCHED_ATLASES if args.atlas is None else \
        [(args.space, value) for value in args.atlas]
    for space, value in atlases:
        if fetch_atlas(api, space, value) != 0:
            return 1
    for res in args.resolution:
        if fetch_masks(api, res) != 0:
            return 1
    print(f"TEMPLATEFLOW_HOME={templateflow_home()}")
    return 0


def fetch_masks(api, res: int) -> int:
    """Fetch the template masks (:data:`~bidsapp.core.masks.TEMPLATE_FILES`) at one resolution."""
    for mask_type, name in TEMPLATE_FILES.items():
        entities = dict(part.split("-") for part in name.split("_")[:-1])
        suffix = name.split("_")[-1]
        path = api.get(TEMPLATE, resolution=res, suffix=suffix, extension=".nii.gz", **entities)
        expected = template_path(mask_type, res)
        if not expected.is_file():
            print(f"bidsapp-fetch-templates: {expected} was not fetched (got {path}).", file=sys.stderr)
            return 1
        print(f"{mask_type:12s} res-{res:02d}: {expected}")
    return 0


def fetch_atlas(api, space: str, value: str) -> int:
    """Fetch one atlas by name (every resolution and desc matching, unless ``:res-RES`` is given) with its
    label tables."""
    from bidsapp.core.atlases import parse_name

    name, desc, res = parse_name(value)
    query = {"atlas": name, **({"desc": desc} if desc else {}),
             **({"resolution": int(res) if res.isdigit() else res} if res else {})}
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

"""Atlases named rather than given as files: ``NAME[:desc-DESC][:res-RES]`` found in TemplateFlow's local cache.

The cache (``$TEMPLATEFLOW_HOME``) is read as a folder with TemplateFlow's layout
(``tpl-<space>/tpl-<space>[_res-<res>]_atlas-<NAME>[_desc-<DESC>]_<dseg|probseg>.nii.gz`` and the label table
``..._dseg.tsv`` / ``..._probseg.tsv`` beside it, with or without ``res``); nothing is downloaded: a missing
atlas is one line naming the ``bidsapp-fetch-templates`` command that fetches it.
"""

from __future__ import annotations

import re
from pathlib import Path

import nibabel as nib
import numpy as np

_NAME = re.compile(r"[A-Za-z0-9]+((:desc-[A-Za-z0-9]+)|(:res-[A-Za-z0-9]+))*")
_FILE = re.compile(r"tpl-(?P<tpl>[A-Za-z0-9]+)(_res-(?P<res>[A-Za-z0-9]+))?_atlas-(?P<atlas>[A-Za-z0-9]+)"
                   r"(_desc-(?P<desc>[A-Za-z0-9]+))?_(?P<suffix>dseg|probseg)\.nii\.gz")


def looks_like_name(value: str) -> bool:
    """Whether an ``--atlas`` value is an atlas name (``Schaefer2018:desc-400Parcels7Networks``), not a path."""
    return bool(_NAME.fullmatch(str(value)))


def parse_name(value: str) -> tuple[str, str | None, str | None]:
    """``NAME[:desc-DESC][:res-RES]`` -> (name, desc, res)."""
    if not looks_like_name(value):
        raise ValueError(f"--atlas {value}: not an atlas name (NAME[:desc-DESC][:res-RES]) nor a file.")
    name, *parts = str(value).split(":")
    ents = dict(p.split("-", 1) for p in parts)
    return name, ents.get("desc"), ents.get("res")


def fetch_command(space: str, name: str, desc: str | None) -> str:
    """The command that puts the atlas in the local cache (needs internet, once)."""
    return f"bidsapp-fetch-templates --atlas {name}{f':desc-{desc}' if desc else ''} --space {space}"


def available(space: str, home: Path) -> dict[str, list[dict]]:
    """Atlases of a template space in the cache: name -> list of {desc, res, suffix, path}."""
    out: dict[str, list[dict]] = {}
    for path in sorted((home / f"tpl-{space}").glob(f"tpl-{space}*_atlas-*_*seg.nii.gz")):
        m = _FILE.fullmatch(path.name)
        if m and m["tpl"] == space:
            out.setdefault(m["atlas"], []).append({**m.groupdict(), "path": path})
    return out


def _listing(atlases: dict[str, list[dict]]) -> str:
    parts = []
    for name, entries in sorted(atlases.items()):
        descs = sorted({"desc-" + e["desc"] for e in entries if e["desc"]}) or ["no desc"]
        parts.append(f"{name} ({', '.join(descs)})")
    return "; ".join(parts) or "none"


def label_table(path: Path) -> Path | None:
    """The label TSV of an atlas file: same name with ``.tsv``, or the same without ``res``."""
    stem = path.name[: -len(".nii.gz")]
    for cand in (stem, re.sub(r"_res-[A-Za-z0-9]+", "", stem)):
        if (path.parent / f"{cand}.tsv").is_file():
            return path.parent / f"{cand}.tsv"
    return None


#: fMRIPrep's spaces of the participant's own anatomy or run, which no TemplateFlow template names
SUBJECT_SPACES = ("T1w", "T2w", "anat", "func", "boldref", "native", "fsnative")


def resolve(value: str, space: str, bold_affine: np.ndarray, home: Path) -> tuple[Path, Path | None]:
    """The atlas file (and its label table) named by ``value`` in ``space``, at the resolution closest to the
    run's voxel size unless ``res`` is given.

    Raises
    ------
    ValueError
        The space is not a TemplateFlow template in the cache; the name (or desc, res) is not there (the
        message lists what the cache has and the fetch command); several descs match.
    """
    name, desc, res = parse_name(value)
    if not (home / f"tpl-{space}").is_dir() and space in SUBJECT_SPACES:
        raise ValueError(f"--atlas {value}: the runs' space '{space}' is the participant's own, not a TemplateFlow "
                         "template; atlases by name need runs in a template space (e.g. --space "
                         "MNI152NLin2009cAsym), or give the atlas as a file on the run's grid.")
    if not (home / f"tpl-{space}").is_dir():
        raise ValueError(f"--atlas {value}: the local TemplateFlow cache (TEMPLATEFLOW_HOME={home}) has no "
                         f"tpl-{space}, the runs' space; if TemplateFlow has the atlas, fetch it once with: "
                         f"{fetch_command(space, name, desc)}; or give the atlas as a file on the run's grid.")
    cached = available(space, home)
    found = [e for e in cached.get(name, []) if (desc is None or e["desc"] == desc) and (res is None or
                                                                                         _same_res(e["res"], res))]
    if not found:
        raise ValueError(f"--atlas {value}: not in the local TemplateFlow cache for tpl-{space} "
                         f"(TEMPLATEFLOW_HOME={home}); it has: {_listing(cached)}.{_closest(name, desc, cached)} "
                         f"If TemplateFlow has it, fetch it once with: {fetch_command(space, name, desc)}")
    descs = sorted({e["desc"] or "" for e in found})
    if len(descs) > 1:
        plain = sorted(Path(e["path"]).name for e in found if not e["desc"])
        without = f"; the version without desc is a file: give it as --atlas PATH ({plain[0]})" if plain else ""
        raise ValueError(f"--atlas {value}: several versions in tpl-{space}; add one of "
                         + ", ".join(f":desc-{d}" for d in descs if d) + f" (e.g. --atlas {name}:desc-{descs[-1]})"
                         + without + ".")
    _one_kind(value, space, found)
    size = float(nib.affines.voxel_sizes(bold_affine).min())
    best = min(found, key=lambda e: abs(float(nib.affines.voxel_sizes(nib.load(e["path"]).affine).min()) - size))
    return best["path"], label_table(best["path"])


def _one_kind(value: str, space: str, found: list[dict]) -> None:
    """Refuse a name that is both a ``dseg`` (labels) and a ``probseg`` (maps) in the cache: which one the run
    got would depend on the resolutions cached (columns regions on one machine, maps on another)."""
    kinds = sorted({e["suffix"] for e in found})
    if len(kinds) > 1:
        files = ", ".join(sorted({Path(e["path"]).name for e in found}))
        raise ValueError(f"--atlas {value}: tpl-{space} has it both as dseg (labels: one column per region) and as "
                         f"probseg (maps: one column per map) ({files}); give the file you mean as --atlas PATH "
                         "and its table as --atlas-labels TSV "
                         "(with --resample-mask when it is not on the run's grid).")


def _closest(name: str, desc: str | None, cached: dict[str, list[dict]]) -> str:
    """" Did you mean ...?" for a misspelt name or desc of an atlas the cache has (empty when none is close)."""
    import difflib

    spelled = [f"{n}:desc-{e['desc']}" if e["desc"] else n for n, entries in cached.items() for e in entries]
    asked = f"{name}:desc-{desc}" if desc else name
    close = difflib.get_close_matches(asked, sorted(set(spelled)), n=1, cutoff=0.75)
    return f" Did you mean --atlas {close[0]}?" if close and close[0] != asked else ""


def _same_res(a: str | None, b: str) -> bool:
    return a is not None and a.lstrip("0") == b.lstrip("0")

"""Inputs are read-only by construction: every place bidsapp writes is checked against every input root.

Checked before anything is written (by the parser, for both analysis levels). The places bidsapp writes:
``output_dir`` (``dataset_description.json``, ``.bidsignore``, ``logs/``, ``sub-*``, group files), any of its
entries that is a symbolic link (it is followed), ``--work-dir``, and, without it, the temporary folder the
private work folder goes to (``$TMPDIR``). The input roots: the BIDS folder, the fMRIPrep folder, the
TemplateFlow home (template masks and atlases by name), and the folders of the ``--atlas``, ``--atlas-labels``,
``--spheres`` and ``--config`` files. Paths are compared after resolving symbolic links.

A written place equal to or inside a folder root is refused; the one exception is the BIDS Apps layout,
``<bids_dir>/derivatives/<name>`` (when that is not the fMRIPrep folder or inside it). A file root (atlas,
label table, config) protects its own folder from being the output folder (its ``dataset_description.json``
would be overwritten) but not the folders below it: ``/data/atlas.nii.gz`` with ``/data/derivatives/bidsapp``
is fine. The reverse also counts: an input root inside the output folder is refused when it lies where bidsapp
writes (``sub-*``, ``logs``, its top-level files); elsewhere (``output_dir=/data``, ``bids_dir=/data/bids``)
nothing of it is written.
"""

from __future__ import annotations

import fnmatch
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

#: top-level entries of the output folder that bidsapp writes (or writes into)
WRITTEN = ("sub-*", "logs", "dataset_description.json", ".bidsignore", "group_runs.*", "space-*")


@dataclass(frozen=True)
class Root:
    """One input: ``path`` (resolved), a name for messages, and whether it is a folder read whole (``tree``)
    or the folder of one input file (only the folder itself is protected)."""

    name: str
    path: Path
    tree: bool = True


def _resolved(path: os.PathLike | str) -> Path:
    return Path(path).expanduser().resolve()


def input_roots(*, bids_dir: Path, fmriprep_dir: Path | None, files: dict[str, tuple[Path, ...]] | None = None,
                config: Path | None = None, templateflow_home: Path | None = None) -> list[Root]:
    """The input roots of an invocation (resolved; ``None`` entries are left out).

    ``files``: the input-file options given (``{"--atlas": (path,), ...}``, options table ``input_file``).
    """
    roots = [Root("BIDS folder (bids_dir)", _resolved(bids_dir))]
    if fmriprep_dir is not None:
        roots.append(Root("fMRIPrep folder (--fmriprep-dir)", _resolved(fmriprep_dir)))
    if templateflow_home is not None:
        roots.append(Root("TemplateFlow home ($TEMPLATEFLOW_HOME)", _resolved(templateflow_home)))
    given = [(option, path) for option, paths in (files or {}).items() for path in paths]
    for option, path in given + [("--config", config)]:
        if path is not None:
            roots.append(Root(f"folder of the {option} file", _resolved(path).parent, tree=False))
    return roots


def _written_part(root: Path, output_dir: Path) -> str | None:
    """The top-level entry of ``output_dir`` holding ``root``, when bidsapp writes there (else None)."""
    first = root.relative_to(output_dir).parts[0]
    return first if any(fnmatch.fnmatchcase(first, pat) for pat in WRITTEN) else None


def conflict(what: str, path: Path, roots: list[Root], *, output: bool) -> str | None:
    """Why writing at ``path`` (resolved) may alter an input, or None.

    ``output`` is True for the output folder: an input inside it where bidsapp writes also counts (the
    reverse check). A work folder is only written below itself (``bidsapp_wf/``), so it is checked one way.
    """
    bids = roots[0].path
    for root in roots:
        if path == root.path:
            return f"{what} {path} must not be the {root.name}"
        if root.tree and root.path in path.parents:
            if root is roots[0]:
                rel = path.relative_to(bids).parts
                if len(rel) >= 2 and rel[0] == "derivatives":
                    continue  # the BIDS Apps layout, <bids_dir>/derivatives/<name> (the fMRIPrep folder is a root)
                return (f"{what} {path} must not be inside the {root.name} {root.path} (only "
                        f"<bids_dir>/derivatives/<name> is allowed)")
            return f"{what} {path} must not be inside the {root.name} {root.path}"
        if output and path in root.path.parents and _written_part(root.path, path):
            return (f"{what} {path} must not contain the {root.name} {root.path} where bidsapp writes "
                    f"({_written_part(root.path, path)})")
    return None


def suggestion(output_dir: Path, roots: list[Root]) -> Path:
    """An output folder that passes the checks: ``<bids_dir>/derivatives/bidsapp`` when it can."""
    bids = roots[0].path
    fmriprep = next((r.path for r in roots if r.name.startswith("fMRIPrep")), bids)
    for cand in (bids / "derivatives" / "bidsapp", fmriprep.parent / "bidsapp", bids.parent / "bidsapp-output",
                 output_dir.parent / "bidsapp-output"):
        if conflict("", cand, roots, output=True) is None:
            return cand
    return Path.home() / "bidsapp-output"


def check_writes_outside_inputs(*, output_dir: Path, roots: list[Root], work_dir: Path | None = None,
                                default_work_parent: Path | None = None) -> None:
    """Refuse (one line naming both paths and a suggested output folder) any place bidsapp would write that
    is an input root or inside one; see the module docstring for the rules.

    Raises
    ------
    ValueError
        The first conflict found.
    """
    out = _resolved(output_dir)
    places = [("output_dir", out, True)]
    if Path(output_dir).is_dir():
        for entry in sorted(Path(output_dir).iterdir()):
            if entry.is_symlink() and any(fnmatch.fnmatchcase(entry.name, p) for p in WRITTEN):
                places.append((f"output_dir's {entry.name} (a symbolic link)", _resolved(entry), False))
    if work_dir is not None:
        places.append(("--work-dir", _resolved(work_dir), False))
    elif default_work_parent is not None:
        places.append(("the temporary folder for the work folder ($TMPDIR)", _resolved(default_work_parent),
                       False))
    for what, path, is_output in places:
        why = conflict(what, path, roots, output=is_output)
        if why is None:
            continue
        if is_output or what.startswith("output_dir"):
            fix = f"use e.g. {suggestion(out, roots)}"
        elif work_dir is not None:
            fix = "give a --work-dir outside the inputs"
        else:
            fix = "set TMPDIR to a folder outside the inputs, or give --work-dir"
        raise ValueError(f"{why}; bidsapp never writes into its inputs: {fix}.")


def default_work_parent() -> Path:
    """Where the private work folder of an invocation without ``--work-dir`` goes."""
    return Path(tempfile.gettempdir())


def check_work_dir(work_dir: Path | None, output_dir: Path) -> None:
    """Refuse a ``--work-dir`` that would put nipype's cache among the outputs (the output folder or inside
    it), or whose workflow folder is not one bidsapp made (a symbolic link, which emptying the cache of
    other code would follow, or a file).

    Raises
    ------
    ValueError
        One line naming the path and the fix.
    """
    from bidsapp.execution.workdir import WORKFLOW_FOLDER

    if work_dir is None:
        return
    work, out = _resolved(work_dir), _resolved(output_dir)
    if work == out or out in work.parents:
        where = "the output folder" if work == out else f"inside the output folder {output_dir}"
        raise ValueError(f"--work-dir {work_dir} is {where}: nipype's cache would sit among the outputs; give a "
                         "--work-dir outside it.")
    cache = Path(work_dir) / WORKFLOW_FOLDER
    if cache.is_symlink() or (cache.exists() and not cache.is_dir()):
        raise ValueError(f"{cache}: is {'a symbolic link' if cache.is_symlink() else 'a file'}, not the work "
                         "folder bidsapp makes there; remove it or give another --work-dir.")

"""Runs whose trial estimates come from one joined model (``--trial-estimates optimized``, ``--trial-denoise``,
``--trial-ridge``): the estimates of each depend on every run of its participant and task.

So each run's ``Sources`` also lists the other runs' own inputs (role ``trial_model_<run>_<role>``): a changed,
added or removed run changes the Sources of all, and none is reused. And when any run of a joined model is
computed, all its runs are (the model is fitted on the runs of one invocation: reusing some would fit it on a
subset and leave the others' estimates from another model).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path

from bidsapp.bids.collect import Run
from bidsapp.errors import InputError
from bidsapp.settings import Settings


def joined_model(s: Settings) -> bool:
    """Whether the settings' trial estimates come from joined models (each fitted on several runs)."""
    from bidsapp.core.trial_fit import model_steps

    return model_steps(s.trial_estimates, s.trial_denoise, s.trial_ridge, s.hrf) is not None


@contextlib.contextmanager
def model_locks(runs: list[Run], s: Settings, holder: str) -> Iterator[None]:
    """Hold the output folder's lock of each joined model of ``runs`` (``logs/locks/model-sub-<label>_task-<label>
    .lock``, one per participant and task) from before the runs are planned until the invocation ends.

    Which runs a model joins depends on the runs that have outputs in the folder (``--run`` brings in the others):
    an invocation that planned while another fitted the same participant and task would fit another run set. The
    second one waits (one line naming the ``holder`` the first wrote in the file) and plans once the first has
    ended. Locks are taken in one order: two invocations never wait for each other.
    """
    from bidsapp.outputs.transaction import run_lock

    keys = sorted({(r.entities.get("subject", ""), r.entities.get("task", "")) for r in runs
                   if r.events is not None}) if joined_model(s) else []
    with contextlib.ExitStack() as held:
        for sub, task in keys:
            identity = f"model-sub-{sub}_task-{task}"
            if not held.enter_context(run_lock(s.output_dir, identity, wait=False, holder=holder)):
                other = ""
                with contextlib.suppress(OSError):
                    other = (s.output_dir / "logs" / "locks" / f"{identity}.lock").read_text().strip()
                print(f"[bidsapp] waiting  sub-{sub} task-{task}: another bidsapp invocation is fitting its joined "
                      f"trial model in {s.output_dir} ({other or 'starting'}); this one plans its runs once that one "
                      "has ended", flush=True)
                held.enter_context(run_lock(s.output_dir, identity, holder=holder))
        yield


def trial_model_groups(runs: list[Run], s: Settings) -> dict[str, list[Run]]:
    """Runs with events whose trial estimates come from one joined model, by model name (none: ``{}``)."""
    from bidsapp.core.trial_fit import join_key

    if not joined_model(s):
        return {}
    groups: dict[str, list[Run]] = {}
    for run in runs:
        if run.events is not None:
            groups.setdefault(join_key(run.entities), []).append(run)
    return groups


#: what a joined model does (the middle of :func:`check_same_columns`' message)
_JOINED = ("its trial estimates (--trial-estimates optimized, --trial-denoise, --trial-ridge) fit the runs of a "
           "participant and task together, column by column, so every run needs the same columns")
#: the way out of each refusal of :func:`check_same_columns`
_FIXES = {"grid": "give the runs one grid (the same space and resolution; --space func gives each run its own), "
                  "leave the odd run out (--run, --session-label, and remove its outputs of earlier invocations), or "
                  "use --trial-estimates lss / lsa (fitted run by run)",
          "mask": "use --mask-strategy fmriprep (the intersection of the runs' masks) or a template mask, or "
                  "--trial-estimates lss / lsa (fitted run by run)"}


def check_same_columns(groups: dict[str, list[Run]], s: Settings) -> None:
    """Refuse, before any work, a joined trial model whose runs would have different columns: volume runs on
    different grids, or masks computed from each run (``background``, ``epi``: voxels differ, and so may the
    regions that keep a voxel). fMRIPrep's per-run masks are intersected by the mask node
    (:func:`bidsapp.core.masks.compute_mask`'s ``joined_masks``), for every volume column kind.

    Raises
    ------
    InputError
        One line naming a run whose columns would differ from the first run's, how, and the fix (exit 2).
    """
    for members in groups.values():
        why = _columns_differ(members, s) if len(members) > 1 else None
        if why:
            raise InputError(f"{why[1]}; {_JOINED}: {_FIXES[why[0]]}.", code=2)


def _columns_differ(members: list[Run], s: Settings) -> tuple[str, str] | None:
    """(kind of fix, how) the columns of ``members`` would differ from the first run's (None: the same)."""
    from bidsapp.core import columns
    from bidsapp.core.io import load_header
    from bidsapp.core.masks import describe_grid, same_grid

    first = members[0]
    if columns.get(columns.choose_kind(first.bold, atlas=s.atlas, **columns.options_of(s))).on_grayordinates:
        return None  # the grayordinates: the same columns in every run of a mesh
    ref = load_header(first.bold, ndim=4)
    for run in members[1:]:
        img = load_header(run.bold, ndim=4)
        if not same_grid(img.shape, img.affine, ref.shape, ref.affine):
            return "grid", (f"{run.bold}: its grid ({describe_grid(img.shape, img.affine)}) differs from that of "
                            f"{first.bold.name} ({describe_grid(ref.shape, ref.affine)})")
    if s.mask_strategy in ("background", "epi"):
        return "mask", (f"{first.bold.name} and {len(members) - 1} other run(s): --mask-strategy {s.mask_strategy} "
                        "computes each run's mask from its own mean image, so their voxels (and the regions that "
                        "keep one) differ")
    return None


def mates(run: Run, groups: dict[str, list[Run]]) -> list[Run]:
    """The other runs of ``run``'s joined model."""
    return [r for members in groups.values() if run in members for r in members if r is not run]


def joined_sources(own: dict, others: list[Run], s: Settings,
                   files_of: Callable[[Run, Settings], tuple[dict, dict]]) -> dict:
    """``own`` (role -> path) and the other runs' inputs that are not the run's own (the settings' files, e.g. an
    atlas, and shared JSON sidecars are listed once), under ``trial_model_<run label>_<role>``."""
    from bidsapp.core.trial_fit import ROLE_PREFIX

    files = dict(own)
    mine = {Path(p) for p in own.values() if p is not None}
    for other in others:
        theirs, _ = files_of(other, s)
        for role, path in theirs.items():
            if path is not None and Path(path) not in mine:
                files[f"{ROLE_PREFIX}{other.label}_{role}"] = path
    return files


def with_joined_runs(todo: list[Run], runs: list[Run], groups: dict[str, list[Run]]) -> list[Run]:
    """``todo`` and every run of a joined model one of them belongs to, in the order of ``runs`` (one line each
    for the runs added)."""
    needed = {id(r) for r in todo}
    for members in groups.values():
        if any(id(r) in needed for r in members):
            for r in members:
                if id(r) not in needed:
                    print(f"[bidsapp] compute  {r.label}: its trial estimates are fitted with the other runs of "
                          "its participant and task, and one of them is computed", flush=True)
                    needed.add(id(r))
    return [r for r in runs if id(r) in needed]

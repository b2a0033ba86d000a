"""Which runs an invocation computes: outputs of the same name made with other settings (refused, or replaced
with ``--replace-outputs``), and outputs that are current (skipped)."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from bidsapp.bids.collect import Run, collect_runs, run_identity
from bidsapp.cli.joined import joined_model, joined_sources, mates, trial_model_groups, with_joined_runs
from bidsapp.cli.plan import naming, recorded_settings, run_settings, source_files
from bidsapp.errors import InputError
from bidsapp.settings import Settings

if TYPE_CHECKING:
    pass


def _variant(stem: str) -> tuple:
    """The name of an output variant: the entities of an output stem that do not name the run (space, atlas, desc)."""
    from bidsapp.api import _RUN_ENTITIES
    from bidsapp.bids.naming import entities_of

    return tuple((k, v) for k, v in entities_of(stem).items() if k not in _RUN_ENTITIES)


def _without_desc(variant: tuple) -> tuple:
    """An output variant's name without its desc (what a run's atlas-<name>_dseg file is named by)."""
    return tuple((k, v) for k, v in variant if k != "desc")


def _current_configuration(run: Run, s: Settings, cache) -> dict:
    """This invocation's configuration of a run, as
    :func:`bidsapp.outputs.transaction.configuration_of` reads a sidecar."""
    from bidsapp.outputs.transaction import configuration_of, file_parameter

    files, _ = source_files(run, s)
    sources = [{"Role": role, "SHA256": cache.sha256(path)} for role, path in files.items()
               if file_parameter(role) and path is not None]
    return configuration_of({"Parameters": recorded_settings(run, s), "Sources": sources})


def check_output_names(runs: list[Run], s: Settings, cache) -> list[tuple[Path, dict]]:
    """One output folder, one meaning per name: outputs already named like this invocation's (same space,
    atlas and desc, any participant) but made with other settings or another atlas file are refused (exit 2)
    unless ``--replace-outputs`` is given; then they are returned (sidecar, differing parameters), for
    :func:`replace_outputs` once every input check has passed."""
    from bidsapp.bids.naming import stem_of_entities
    from bidsapp.outputs.reader import output_files, read_sidecar
    from bidsapp.outputs.transaction import configuration_of, describe_differences, differing_parameters

    current: dict[tuple, dict] = {}
    for run in runs:
        sidecar = naming(run, s).sidecar(s.output_dir)
        key = _variant(sidecar.name[: -len("_timeseries.json")])
        if key not in current:
            current[key] = _current_configuration(run, run_settings(run, s), cache)
    # the atlas entity names one atlas file whatever the desc (the run's atlas-<name>_dseg is shared by them)
    atlas_current = {_without_desc(key): config for key, config in current.items() if dict(key).get("atlas")}
    from bidsapp.options import INPUT_FILES

    atlas_keys = set(INPUT_FILES)
    replaced = []
    for sidecar in output_files(s.output_dir, "_timeseries.json"):  # the runs the loader sees
        stem = sidecar.name[: -len("_timeseries.json")]
        key = _variant(stem)
        if key not in current and _without_desc(key) not in atlas_current:
            continue
        meta = read_sidecar(sidecar)
        if meta is None:
            continue  # unreadable: incomplete, recomputed or left out by the reader
        if key in current:
            diff = differing_parameters(configuration_of(meta), current[key])
        else:  # another desc of the same atlas name: only the atlas files must agree
            diff = {k: v for k, v in differing_parameters(configuration_of(meta), atlas_current[_without_desc(key)])
                    .items() if k in atlas_keys}
        if not diff:
            continue
        name = stem_of_entities(key)
        if not s.replace_outputs:
            if atlas_keys & set(diff):
                why = (" (the files that define the columns are compared by their checksum; every desc of a run "
                       "shares its atlas-<name> columns image, _dseg or _probseg)")
                variant = "give these files another --atlas-name"
            else:
                why, variant = "", "name this variant with --desc LABEL"
            raise InputError(
                f"{sidecar}: outputs named {name} in this folder were made with other settings: "
                f"{describe_differences(diff)}{why}; one output folder keeps one meaning per name: write to "
                f"another output folder, or {variant}, or pass --replace-outputs to redo "
                "or invalidate every run of that name.", code=2)
        replaced.append((sidecar, diff))
    return replaced


def replace_outputs(replaced: list[tuple[Path, dict]], output_dir: Path) -> None:
    """``--replace-outputs``: remove the sidecars of outputs of the same name made with other settings (under
    each run's lock), before any run is written: they are incomplete until recomputed, never mixed."""
    from bidsapp.bids.naming import RunNaming, entities_of
    from bidsapp.outputs.transaction import describe_differences, run_lock

    for sidecar, diff in replaced:
        stem = sidecar.name[: -len("_timeseries.json")]
        ents = entities_of(stem)
        with run_lock(output_dir, RunNaming(ents, desc=ents.get("desc", "")).identity):
            sidecar.unlink(missing_ok=True)
        print(f"[bidsapp] replaced {stem}: made with other settings ({describe_differences(diff)}); its sidecar "
              "was removed (--replace-outputs)", flush=True)


def runs_to_compute(runs: list[Run], s: Settings, cache_dir: Path) -> tuple[list[Run], list[tuple[Path, dict]]]:
    """The runs whose outputs are not current (one line each: skipped, or compute and why), and the outputs of
    the same name made with other settings that ``--replace-outputs`` replaces (see :func:`check_output_names`)."""
    from bidsapp.outputs import provenance
    from bidsapp.outputs.checksums import ChecksumCache
    from bidsapp.outputs.transaction import clear_temporaries, reuse_status

    cache = ChecksumCache(cache_dir)
    replaced = check_output_names(runs, s, cache)
    to_replace = {sidecar for sidecar, _ in replaced}
    groups = trial_model_groups(runs, s)
    todo = []
    for run in runs:
        rs = run_settings(run, s)
        files, roots = source_files(run, rs)
        files = joined_sources(files, mates(run, groups), rs, source_files)
        sidecar = naming(run, rs).sidecar(s.output_dir)
        if sidecar in to_replace:  # never skipped, then invalidated: --replace-outputs redoes it
            reason = "made with other settings (--replace-outputs)"
        else:
            reason = reuse_status(sidecar, configuration_hash=rs.configuration_hash(),
                                  current_sources=lambda f=files, r=roots: provenance.sources(f, r, cache, s.nprocs),
                                  cache=cache)
        if reason is None:
            clear_temporaries(s.output_dir, naming(run, rs))
            print(f"[bidsapp] skipped  {run.label}: outputs are current (settings, version, inputs, outputs)",
                  flush=True)
        else:
            print(f"[bidsapp] compute  {run.label}: {reason}", flush=True)
            todo.append(run)
    return with_joined_runs(todo, runs, groups), replaced


#: why a run that ``--run`` / ``--session-label`` leave out is in the invocation (the end of its errors)
PULLED_IN = ("{label} is computed although --run / --session-label leave it out: it belongs to the joined trial "
             "model of the selected runs and has outputs in {out}; fix or fetch its inputs, or remove its outputs to "
             "leave it out")


def left_out_mates(runs: list[Run], s: Settings) -> list[Run]:
    """With a joined trial model and ``--run`` or ``--session-label``: the runs of the selected participants and
    tasks that the filters leave out but that have outputs of these settings in the output folder. Their estimates
    came from the joined model with the selected runs: fitted on the selected runs alone, the model would be
    another one, so they are checked and computed with them (as without the filters). Runs left out that have no
    outputs stay out, and their files are not read (e.g. an unfetched session)."""
    from bidsapp.bids.naming import entities_of
    from bidsapp.options import step_specs
    from bidsapp.outputs.reader import output_files

    spec = step_specs(s)["collection"]
    if not joined_model(s) or not (spec.get("runs") or spec.get("sessions")):
        return []
    chosen = {naming(r, run_settings(r, s)).sidecar(s.output_dir) for r in runs}
    keys = {(r.entities.get("subject"), r.entities.get("task")) for r in runs}
    others = {p: entities_of(p.name) for p in output_files(s.output_dir, "_timeseries.json") if p not in chosen}
    others = {p: e for p, e in others.items() if (e.get("subject"), e.get("task")) in keys}
    if not others:
        return []  # nothing of a left-out run in the folder: its files are not even indexed
    try:  # only the runs with outputs: other runs' files are not read
        found = collect_runs(**dict(spec, participants=_values(others.values(), "subject"), sessions=(), runs=(),
                                    tasks=_values(others.values(), "task")),
                             only={run_identity(e) for e in others.values()}, need_confounds=False)
    except InputError as exc:
        raise InputError(f"{exc} (a run of the joined trial model of the selected runs: --run / --session-label "
                         f"leave it out, but it has outputs in {s.output_dir}, which are fitted again with the "
                         "selected ones; fetch or fix it, or remove its outputs)", code=exc.code) from None
    return [r for r in found if naming(r, run_settings(r, s)).sidecar(s.output_dir) in others
            and (r.entities.get("subject"), r.entities.get("task")) in keys]


def _values(entities: Iterable[dict], key: str) -> tuple:
    """The distinct values of ``key`` among ``entities`` (a collection filter), sorted."""
    return tuple(sorted({e[key] for e in entities if key in e}))

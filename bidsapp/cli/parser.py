"""The BIDS-App argument parser; options also come from --config (JSON or TOML)."""

from __future__ import annotations

import argparse
import difflib
import json
import os
import sys
from pathlib import Path

from bidsapp import __version__
from bidsapp.errors import UsageError
from bidsapp.options import BY_NAME, INPUT_FILES, OPTIONS, OTHER
from bidsapp.settings import SETTING_NAMES, Settings

EXIT_CODES = (
    (0, "success"),
    (1, "a run failed (the message names the file)"),
    (2, "bad command line or settings"),
    (17, "unknown analysis level"),
    (18, "no run matches the filters"),
    (66, "missing input (fMRIPrep folder, participant, TR, confounds, mask)"),
    (73, "cannot write the output or work folder (read-only, full, no permission)"),
    (129, "interrupted by SIGHUP (130: SIGINT, 143: SIGTERM); the work folder is kept"),
)


class _HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Show each option's default once: appended as ``(default: X)`` unless the help already says it."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        unset = action.default is None or action.default is False or action.default == [] \
            or action.default == argparse.SUPPRESS
        if "default" in text or not action.option_strings or unset:
            return text
        return text + " (default: %(default)s)"


def aliases() -> dict[str, str]:
    """Hidden spellings of the options table (``hidden_flags``, e.g. the BIDS Apps specification's
    ``--participant_label``, which fMRIPrep accepts too) -> the option's first flag."""
    return {flag: o.flags[0] for o in OPTIONS for flag in o.hidden_flags}


def _canonical(args: list[str]) -> list[str]:
    """``args`` with each hidden spelling (also ``--alias=value``) replaced by its option."""
    out, options, table = [], True, aliases()
    for arg in args:
        if arg == "--":
            options = False
        name, eq, value = arg.partition("=")
        out.append(table[name] + eq + value if options and name in table else arg)
    return out


class BidsAppsArgumentParser(argparse.ArgumentParser):
    """argparse with the hidden spellings of the options table as aliases (:func:`aliases`) and one-line
    errors: an unknown option is answered with the closest known one, the usage is printed only with ``-h``."""

    def parse_known_args(self, args=None, namespace=None):
        args = sys.argv[1:] if args is None else list(args)
        self._given = _canonical(args)
        return super().parse_known_args(self._given, namespace)

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {self.explain(message)}\n")

    def explain(self, message: str) -> str:
        """argparse's complaint as one line that says what to do."""
        known = sorted({o[2:] for a in self._actions for o in a.option_strings if o.startswith("--")})
        ambiguous = "ambiguous option: "
        if message.startswith(ambiguous):  # "--tr could match --trial-window, ..." (the user meant --t-r)
            wrong, _, matches = message[len(ambiguous):].partition(" could match ")
            wrong = wrong.split("=")[0]
            close = _closest(wrong, known)
            if close:
                return f"ambiguous option {wrong}; did you mean --{close}? (it also starts {matches})"
            return f"ambiguous option {wrong}: it could start {matches} ({self.prog} -h shows the usage)"
        prefix = "unrecognized arguments: "
        if message.startswith("the following arguments are required: ") and self._list_took_positionals():
            return (f"{message}: {self._list_took_positionals()} took the words after it as its values; give "
                    f"bids_dir output_dir analysis_level first, or end the list with '--' ({self.prog} -h shows "
                    "the usage)")
        if not message.startswith(prefix):
            return f"{message} ({self.prog} -h shows the usage)"
        words = message[len(prefix):].split()
        unknown = [w.split("=")[0] for w in words if w.startswith("-")]
        if not unknown:
            return (f"unexpected argument(s) {' '.join(words)}: {self.prog} takes bids_dir output_dir "
                    f"analysis_level, then options ({self.prog} -h shows the usage)")
        wrong = unknown[0]
        after = words[words.index("--") + 1:] if "--" in words else []
        if wrong == "--" and not after:
            return "'--' at the end of the command line: it ends the options and nothing follows it; leave it out"
        if wrong == "--":
            wrong = next((w.split("=")[0] for w in after if w.startswith("-")), None)
            if wrong is None:
                return (f"unexpected argument(s) {' '.join(after)} after '--': {self.prog} takes bids_dir "
                        f"output_dir analysis_level, then options ({self.prog} -h shows the usage)")
        if wrong.startswith("--") and wrong[2:] in known:  # a known option, given after "--"
            return (f"{wrong} after '--': '--' ends the options, so what follows it is not read as an option; "
                    f"give the options before '--' (or leave '--' out)")
        close = _closest(wrong, known)
        hint = f"; did you mean --{close}?" if close else f"; {self.prog} -h lists every option"
        more = f" (and {len(unknown) - 1} more)" if len(unknown) > 1 else ""
        return f"unknown option {wrong}{more}{hint}"


    def _list_took_positionals(self) -> str | None:
        """The last list option (``--participant-label 01 02 ...``) given before any ``--``, when words
        follow it: it took them all, bids_dir, output_dir and analysis_level included."""
        lists = {o for a in self._actions if a.nargs in ("+", "*") for o in a.option_strings}
        given = getattr(self, "_given", [])
        given = given[: given.index("--")] if "--" in given else given
        last = None
        for i, word in enumerate(given):
            if word.split("=")[0] in lists and "=" not in word and i + 1 < len(given):
                last = word
            elif word.startswith("-"):
                last = None
        return last


#: other tools' spellings (fMRIPrep's) of an option, answered with bidsapp's in "did you mean"
OTHER_SPELLINGS = {"nthreads": "nprocs", "n-cpus": "nprocs", "w": "work-dir", "mem-mb": "mem-gb"}


def _closest(wrong: str, known: list[str]) -> str | None:
    """The known long option (without ``--``) a user most likely meant by ``wrong``: the same letters
    ignoring case, dashes and underscores (``--TR``, ``--tr`` -> ``t-r``), another tool's spelling, or the
    closest by edit distance."""
    word = wrong.lstrip("-").replace("_", "-").lower()
    squeezed = {k.replace("-", ""): k for k in known}
    if word.replace("-", "") in squeezed:
        return squeezed[word.replace("-", "")]
    if word in OTHER_SPELLINGS and OTHER_SPELLINGS[word] in known:
        return OTHER_SPELLINGS[word]
    close = difflib.get_close_matches(word, known, n=1, cutoff=0.7)
    return close[0] if close else None


def build_parser() -> argparse.ArgumentParser:
    epilog = "exit codes:\n" + "\n".join(f"  {code:>3}  {what}" for code, what in EXIT_CODES) + (
        "\n\nAny option can also come from --config (JSON or TOML, option names with underscores); "
        "the command line wins.")
    p = BidsAppsArgumentParser(
        prog="bidsapp",
        description="After fMRIPrep: per run, a cleaned samples x features array (rows = volumes,\n"
        "columns = mask voxels or atlas regions) with features/samples tables and provenance.",
        epilog=epilog,
        formatter_class=_HelpFormatter,
    )
    groups: dict[str | None, argparse._ActionsContainer] = {None: p}
    for option in OPTIONS:
        if option.derived:
            continue
        if option.group not in groups:
            groups[option.group] = p.add_argument_group(option.group)
        groups[option.group].add_argument(*(option.flags or (option.name,)), **option.argparse_kwargs())
    g = groups[OTHER]
    g.add_argument("--version", action="version", version=f"bidsapp {__version__}")
    return p


def _read_config(path: Path) -> dict:
    """The raw key -> value pairs of a .json or .toml settings file (keys with underscores)."""
    if not path.is_file():
        raise UsageError(f"{path}: config file not found.")
    text = path.read_text(encoding="utf-8-sig")
    try:
        if path.suffix == ".toml":
            try:
                import tomllib
            except ImportError:  # Python 3.10
                raise UsageError(f"{path}: TOML settings need Python >= 3.11; use a .json file.") from None
            data = tomllib.loads(text)
        else:
            data = json.loads(text)
    except UsageError:
        raise
    except Exception as exc:  # json / toml decode errors
        kind = "TOML" if path.suffix == ".toml" else "JSON"
        other = "" if path.suffix in (".json", ".toml") else " (config files are JSON, or TOML named .toml)"
        raise UsageError(f"{path}: cannot parse config as {kind}{other} ({exc}).") from exc
    if not isinstance(data, dict):
        raise UsageError(f"{path}: a config file holds one object of settings, e.g. {{\"denoise\": \"simple\"}}.")
    return {str(k).replace("-", "_"): v for k, v in data.items()}


class _ArgumentError(Exception):
    """argparse's complaint about one value (raised instead of exiting)."""


def _quiet_parser() -> argparse.ArgumentParser:
    """The same parser, with no defaults (only given options appear) and errors raised."""
    parser = build_parser()
    for action in parser._actions:
        if action.option_strings:
            action.default = argparse.SUPPRESS

    def error(message):
        raise _ArgumentError(message)

    parser.error = error
    return parser


_POSITIONALS = ["bids_dir", "output_dir", "participant"]


def _tokens(action: argparse.Action, value) -> list[str]:
    """Command-line words equivalent to one config value (so both are typed and checked alike)."""
    if value is None:
        return []
    if action.nargs == 0:  # flags: store_true / store_false / --x/--no-x
        if not isinstance(value, bool):
            raise _ArgumentError("expected true or false")
        if isinstance(action, argparse.BooleanOptionalAction):
            return [action.option_strings[0] if value else action.option_strings[1]]
        wanted = isinstance(action, argparse._StoreTrueAction)
        return [action.option_strings[0]] if value == wanted else []
    if isinstance(value, dict):
        if action.dest != "plugin_args":
            raise _ArgumentError("expected a single value, not an object")
        value = json.dumps(value)  # --plugin-args takes a JSON object: a config file may give it as one
    if isinstance(value, list) and action.nargs not in ("+", "*", 2):
        raise _ArgumentError("expected a single value, not a list")
    items = value if isinstance(value, list) else [value]
    if any(isinstance(v, bool | dict | list) for v in items):
        raise _ArgumentError("expected " + ("numbers or words" if len(items) > 1 else "a number or a word"))
    return [action.option_strings[0], *[str(v) for v in items]]


def config_values(path: Path) -> dict:
    """Settings from a config file, converted and checked by the command-line parser.

    Raises
    ------
    UsageError
        Unknown key, or a value the command line would refuse (names key, value and what is allowed).
    """
    data = _read_config(path)
    parser = _quiet_parser()
    actions = {a.dest: a for a in parser._actions
               if a.option_strings and a.dest not in ("help", "version") and a.help != argparse.SUPPRESS}
    data = _negated_keys(data, actions, path)
    if "config" in data:
        raise UsageError(f"{path}: setting 'config' names a config file inside a config file; give one config file "
                         "(--config) and its settings in it.")
    unknown = sorted(k for k in data if k not in actions)
    if unknown:
        known = sorted({o[2:] for a in actions.values() for o in a.option_strings if o.startswith("--")})
        meant = [f"{c.replace('-', '_')!r} for {k!r}" for k, c in ((k, _closest(k, known)) for k in unknown) if c]
        hint = f" (did you mean {', '.join(meant)}?)" if meant else ""
        raise UsageError(f"{path}: unknown setting(s) {unknown}{hint}; settings are the long option names with "
                         "underscores (see bidsapp --help); bids_dir, output_dir and analysis_level are "
                         "given on the command line.")
    out = {}
    for key, value in data.items():
        action = actions[key]
        try:
            parsed = vars(parser.parse_args(_POSITIONALS + _tokens(action, value)))
        except _ArgumentError as exc:
            allowed = f"; allowed: {', '.join(map(str, action.choices))}" if action.choices else ""
            allowed = "" if "choose from" in str(exc) else allowed
            raise UsageError(f"{path}: setting '{key}' = {json.dumps(value)} is invalid ({exc}{allowed}).") from None
        if key in parsed:
            out[key] = parsed[key]
    return out


def _negated_keys(data: dict, actions: dict, path: Path) -> dict:
    """A config key spelled as a ``--no-...`` option (``no_demean: true``, as ``--no-demean``) becomes the setting
    it turns off (``demean: false``); the same setting given both ways is refused."""
    out = dict(data)
    for key, value in data.items():
        action = actions.get(key[3:]) if key.startswith("no_") and key not in actions else None
        if action is None or f"--{key.replace('_', '-')}" not in action.option_strings:
            continue
        if not isinstance(value, bool):
            raise UsageError(f"{path}: setting '{key}' = {json.dumps(value)} is invalid (expected true or false).")
        if key[3:] in data:
            raise UsageError(f"{path}: settings '{key}' and '{key[3:]}' are one setting given twice; keep one.")
        out[key[3:]] = not value
        del out[key]
    return out


def parse_args(argv: list[str] | None = None) -> Settings:
    """Parse the command line (+ config file) into validated :class:`Settings`.

    A config file is read with the same parser as the command line; the command line wins
    for every option it gives, in any spelling (``--x=v``, abbreviations).
    """
    parser = build_parser()
    raw = list(argv) if argv is not None else sys.argv[1:]
    values = vars(parser.parse_args(raw))
    if values.get("config"):
        try:
            explicit = set(vars(_quiet_parser().parse_args(raw)))
        except _ArgumentError as exc:  # pragma: no cover - the full parser accepted raw already
            raise UsageError(str(exc)) from None
        values.update({k: v for k, v in config_values(Path(values["config"])).items() if k not in explicit})
    if values["analysis_level"] not in ("participant", "group"):
        raise UsageError(f"Unknown analysis level '{values['analysis_level']}'; use participant or group.", code=17)
    for option in OPTIONS:
        if option.none_word and values.get(option.name) == "none":
            values[option.name] = None
    _set_folders(values)
    _set_columns_name(values)
    _check_trial_options(values)
    _set_execution(values)
    _as_paths(values)
    settings = Settings(**{k: v for k, v in values.items() if k in SETTING_NAMES})
    check_inputs_untouched(settings)
    return settings


def _set_columns_name(values: dict) -> None:
    """An ``--atlas`` that names a TemplateFlow atlas becomes ``atlas_template``; ``--desc`` and
    ``--atlas-name`` must be BIDS labels; ``atlas_name`` (the ``atlas-`` entity) defaults to the name of
    the files that define the columns."""
    from bidsapp.bids.naming import check_label, desc_label
    from bidsapp.core.atlases import looks_like_name, parse_name

    atlas = values.get("atlas")
    if atlas is not None and not Path(atlas).is_file() and looks_like_name(str(atlas)):  # a TemplateFlow atlas
        values["atlas_template"], values["atlas"] = str(atlas), None

    if values.get("desc") is not None:
        try:
            check_label(values["desc"], "--desc")
        except ValueError as exc:
            raise UsageError(str(exc)) from None
    if values.get("atlas_name") is not None:
        try:
            check_label(values["atlas_name"], "--atlas-name")
        except ValueError as exc:
            raise UsageError(str(exc)) from None
        columns = [o for o in OPTIONS if o.names_columns]
        if not values.get("atlas_template") and not any(values.get(o.name) for o in columns):
            raise UsageError(f"--atlas-name {values['atlas_name']}: names the columns of "
                             f"{', '.join(o.flags[0] for o in columns)}; without one of them the columns are voxels "
                             "(name a variant of the settings with --desc).")
    elif values.get("atlas_template"):
        name, desc, _ = parse_name(values["atlas_template"])
        values["atlas_name"] = desc_label(name + (desc or ""))
    elif any(values.get(o.name) for o in OPTIONS if o.names_columns):
        values["atlas_name"] = _columns_name(next(o for o in OPTIONS if o.names_columns and values.get(o.name)),
                                             values)


def _check_trial_options(values: dict) -> None:
    """The trial window starts before it ends; ``--hrf`` needs trial-wise estimates."""
    window = values.get("trial_window") or BY_NAME["trial_window"].default
    if not window[0] < window[1]:
        raise UsageError(f"--trial-window {window[0]:g} {window[1]:g}: START must be before END (seconds).")
    _check_joined_model(values)
    _check_hrf(values)


def _check_joined_model(values: dict) -> None:
    """Combinations whose model would not be the one asked for are refused: ``--trial-ridge`` needs one model per
    run (lsa, optimized); ``--trial-denoise pca`` needs ``optimized`` or ``lsa --trial-ridge`` (the joined model
    without ridge is LSS with one regressor for all other trials, not the LSS of ``--trial-estimates lss``);
    ``--trial-repeats`` is read only by the joined model's cross-validation (the joined model's HRF:
    :func:`_check_hrf`)."""
    estimates = values.get("trial_estimates")
    estimates = None if estimates in (None, "none") else estimates
    ridge, denoise = bool(values.get("trial_ridge")), values.get("trial_denoise") == "pca"
    if ridge and estimates not in ("lsa", "optimized"):
        raise UsageError(f"--trial-ridge needs --trial-estimates lsa or optimized (got {estimates or 'none'}): it "
                         "shrinks a model with one regressor per trial per run.")
    if denoise and not (estimates == "optimized" or (estimates == "lsa" and ridge)):
        raise UsageError(f"--trial-denoise pca needs --trial-estimates optimized, or lsa with --trial-ridge (got "
                         f"{estimates or 'none'}{' without --trial-ridge' if estimates == 'lsa' else ''}).")
    joined = estimates == "optimized" or ridge
    if values.get("trial_repeats") and not joined:
        raise UsageError(f"--trial-repeats {values['trial_repeats']} is read only by the cross-validation of "
                         f"--trial-estimates optimized (or lsa --trial-ridge); with {estimates or 'none'} it would "
                         "do nothing: drop it or use --trial-estimates optimized.")


def _as_paths(values: dict) -> None:
    """List options become tuples, path options absolute paths; an input file that does not exist is refused
    (exit 66)."""
    for option in OPTIONS:
        if option.is_list:
            values[option.name] = tuple(values.get(option.name) or ())
            if option.type is Path:
                values[option.name] = tuple(Path(v).resolve() for v in values[option.name])
        elif option.type is Path and values.get(option.name) is not None:
            values[option.name] = Path(values[option.name]).resolve()
    for k in INPUT_FILES:
        for path in _paths(values.get(k)):
            if not path.is_file():
                raise UsageError(f"{path}: --{k.replace('_', '-')} file not found.", code=66)


def _paths(value) -> tuple[Path, ...]:
    """An input-file option's value as paths (none, one, or a list)."""
    if value is None:
        return ()
    return tuple(Path(v) for v in value) if isinstance(value, (list, tuple)) else (Path(value),)


def _columns_name(option, values: dict) -> str:
    """Default ``atlas-`` entity: the ``atlas-`` entity or stem of the option's file; for several files, the
    option's name."""
    from bidsapp.bids.naming import desc_label

    value = values[option.name]
    if isinstance(value, (list, tuple)):
        return desc_label(option.name)
    stem = Path(value).name.split(".")[0]
    ent = [p[6:] for p in stem.split("_") if p.startswith("atlas-")]
    return desc_label(ent[0] if ent else stem) or "atlas"


def _set_folders(values: dict) -> None:
    """Resolve bids_dir, output_dir and the fMRIPrep folder in ``values`` (input roots are checked later)."""
    bids_dir = Path(values["bids_dir"]).resolve()
    out = Path(values["output_dir"]).resolve()
    fmriprep = values.get("fmriprep_dir")
    if fmriprep is None:
        cand = bids_dir / "derivatives" / "fmriprep"
        fmriprep = cand if cand.is_dir() or not _looks_like_derivatives(bids_dir) else bids_dir
    values["fmriprep_dir"] = Path(fmriprep).resolve()
    values["bids_dir"], values["output_dir"] = bids_dir, out


def _check_hrf(values: dict) -> None:
    """--hrf needs trial estimates; the joined trial model (optimized, --trial-denoise, --trial-ridge) has one
    regressor per trial, so it takes the SPM HRF or the library, not another shape or a basis."""
    hrf = values.get("hrf") or BY_NAME["hrf"].default
    estimates = values.get("trial_estimates")
    joined = estimates == "optimized" or values.get("trial_denoise") == "pca" or bool(values.get("trial_ridge"))
    if hrf != BY_NAME["hrf"].default and estimates in (None, "none") and not joined:
        raise UsageError(f"--hrf {hrf} shapes the trial-wise estimates, but none are made; add --trial-estimates "
                         "lss or lsa (or drop --hrf).")
    if joined and hrf not in ("spm", "library"):
        asked = "--trial-estimates optimized" if estimates == "optimized" else "--trial-denoise/--trial-ridge"
        raise UsageError(f"--hrf {hrf}: the joined trial model has one regressor per trial ({asked}) and takes "
                         "--hrf spm or library (optimized uses the library); use --hrf spm or --hrf library, or "
                         f"--trial-estimates lss or lsa for --hrf {hrf}.")


def _set_execution(values: dict) -> None:
    """Fill the machine's defaults of --mem-gb and --nprocs in ``values``; check the plugin options."""
    if values.get("mem_gb") is None:
        from bidsapp.execution.memory import default_mem_gb

        values["mem_gb"] = default_mem_gb()
    if values.get("nprocs") is None:
        values["nprocs"] = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    if values.get("plugin") not in ("MultiProc", "Linear") and values.get("work_dir") is None:
        raise UsageError(f"--plugin {values['plugin']} runs nodes on other machines: give a --work-dir on a "
                         "filesystem they share.")
    if values.get("plugin_args"):
        try:
            json.loads(values["plugin_args"])
        except json.JSONDecodeError as exc:
            raise UsageError(f"--plugin-args must be a JSON object ({exc}).") from exc


def check_inputs_untouched(s: Settings) -> None:
    """Refuse (exit 2) an output folder, work folder or ``$TMPDIR`` that is an input root or inside one,
    before anything is written (see :mod:`bidsapp.cli.input_roots`)."""
    from bidsapp.cli import input_roots as ir

    tf_home = None
    if s.mask_strategy.endswith("-template") or s.atlas_template:
        from bidsapp.core.masks import templateflow_home

        tf_home = templateflow_home()
    files = {f"--{k.replace('_', '-')}": _paths(getattr(s, k)) for k in INPUT_FILES}
    roots = ir.input_roots(bids_dir=s.bids_dir, fmriprep_dir=s.fmriprep_dir, files=files, config=s.config,
                           templateflow_home=tf_home)
    default_parent = ir.default_work_parent() if s.analysis_level == "participant" else None
    try:
        ir.check_writes_outside_inputs(output_dir=s.output_dir, roots=roots, work_dir=s.work_dir,
                                       default_work_parent=default_parent)
        if s.analysis_level == "participant":
            ir.check_work_dir(s.work_dir, s.output_dir)
    except ValueError as exc:
        raise UsageError(str(exc)) from None


def _looks_like_derivatives(path: Path) -> bool:
    desc = path / "dataset_description.json"
    if not desc.exists():
        return False
    try:
        return json.loads(desc.read_text()).get("DatasetType") == "derivative"
    except json.JSONDecodeError:
        return False

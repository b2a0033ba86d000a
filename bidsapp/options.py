"""Every option of bidsapp, declared once.

Each row of :data:`OPTIONS` gives an option's name, flags, type, default, choices, help, group, whether it
enters the configuration hash and which step consumes it. Everything else derives from this table:

- the argument parser (:func:`bidsapp.cli.parser.build_parser`) and config files (``config_values``),
- :class:`bidsapp.settings.Settings` (one field per row, generated),
- the Boutiques descriptor (``boutiques.json``, generated from the parser),
- the configuration hash (``NON_RESULT_FIELDS``: the rows with ``hashed=False``),
- the inputs of the workflow's nodes (:func:`step_specs`: one dict of node inputs per step).

Adding an option is one row here (plus the code of the step that uses it); ``tests/test_option_wiring.py``
fails if a hashed option does not reach the node of the step it names.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bidsapp.core.names import (
    COMPCOR,
    HRF_MODELS,
    MASK_STRATEGIES,
    MODELS,
    STRATEGIES,
    TRIAL_MODELS,
    parse_dummy_scans,
)
from bidsapp.outputs.writers import OUTPUT_FORMATS, format_help

#: the steps an option may feed: the collection of runs, the workflow's nodes, and execution
STEPS = ("collection", "mask", "masking", "cleaning", "segmentation", "outputs", "execution", "group")
#: the steps that are nodes of a run's workflow (each receives ``step_specs(settings)[step]``)
NODE_STEPS = ("mask", "masking", "cleaning", "segmentation", "outputs")

SURFACES = ("midthickness", "pial", "white", "inflated", "none")
#: --connectivity measures (bidsapp.core.connectivity.MEASURES)
CONNECTIVITY_MEASURES = ("correlation", "partial-correlation", "covariance")
PLUGINS = ("MultiProc", "Linear", "SLURM", "SLURMGraph", "SGE", "SGEGraph", "PBS", "LSF", "Condor")

#: node inputs that gather several options into one dict (by option name)
DICT_INPUTS = ("strategy_params", "column_args")

REQUIRED = object()
"""Default of the positional arguments (no default)."""


def none_or(kind: Callable, what: str = "a number") -> Callable:
    """argparse type: ``none``/``null``/empty -> None, anything else converted by ``kind``.

    A value ``kind`` cannot convert is refused with ``'<value>' is not <what>: give <what> or none``
    (argparse's own message would name this function: "invalid conv value").
    """
    def conv(v):
        if str(v).lower() in ("none", "null", ""):
            return None
        try:
            return kind(v)
        except argparse.ArgumentTypeError:
            raise
        except (TypeError, ValueError):
            raise argparse.ArgumentTypeError(f"{v!r} is not {what}: give {what} or none") from None
    return conv


def positive(kind: Callable, *, strict: bool = True) -> Callable:
    """argparse type: a number > 0 (or >= 0 with ``strict=False``)."""
    def conv(v):
        x = kind(v)
        if not math.isfinite(x):
            raise argparse.ArgumentTypeError(f"{v!r} must be a finite number")
        if x < 0 or (strict and x == 0):
            raise argparse.ArgumentTypeError(f"{v!r} must be {'> 0' if strict else '>= 0'}")
        return x
    conv.__name__ = kind.__name__
    conv.number_kind = kind
    return conv


def fraction(v: str) -> float:
    """argparse type: a share between 0 and 1."""
    x = float(v)
    if not 0 <= x <= 1:
        raise argparse.ArgumentTypeError(f"{v!r} must be between 0 and 1")
    return x


def n_compcor(v: str) -> str | int:
    """argparse type of ``--n-compcor``: ``all`` or an integer."""
    return "all" if v == "all" else int(v)


class ExtendList(argparse._StoreAction):
    """A list option given several times keeps every value (``--participant-label 01 --participant-label 02``
    is both), the first use replacing the default; a plain ``store`` would keep only the last list."""

    def __call__(self, parser, namespace, values, option_string=None):
        given = namespace.__dict__.setdefault("_lists_given", set())
        before = list(getattr(namespace, self.dest) or []) if self.dest in given else []
        given.add(self.dest)
        setattr(namespace, self.dest, before + list(values))


@dataclass(frozen=True)
class Option:
    """One option: how it is spelled and parsed, what it defaults to and where it goes.

    Attributes
    ----------
    name : str
        Settings field, config-file key and argparse ``dest``.
    flags : tuple of str
        Command-line spellings (empty: a positional argument).
    group : str or None
        Title of the ``--help`` section (None: positionals).
    help : str
        Help text (verbatim in ``--help`` and Boutiques).
    steps : tuple of str
        Where the value is consumed (:data:`STEPS`): the nodes whose inputs it sets, or collection/execution,
        or the group level (``group``).
    hashed : bool
        Whether it changes the numbers written (enters the configuration hash).
    default : object
        The :class:`~bidsapp.settings.Settings` default (tuples for lists, None for "none").
    type, choices, nargs, metavar, action
        As in :meth:`argparse.ArgumentParser.add_argument` (``action``: ``store``, ``store_true``,
        ``store_false`` or ``boolean_optional``).
    none_word : bool
        The word ``none`` on the command line means None in the settings.
    node_input : str or None
        Name of the node input it sets (default: ``name``).
    example : object
        A valid non-default value (tests change each option to it); not needed with choices or flags.
    hidden_flags : tuple of str
        Other accepted spellings, absent from ``--help`` and Boutiques (e.g. ``--participant_label``).
    input_file : bool
        A file (or files) the runs read: it must exist (exit 66), its folder is an input root (never written),
        its SHA-256 is one of each run's ``Sources`` and binds the output name (not its path).
    names_columns : bool
        It defines the columns: the first such option given names the outputs' ``atlas-`` entity by default.
    derived : bool
        Not an option of its own: a settings field that the parser sets from another option (no flag, not in
        ``--help``, config files or Boutiques, never a node input; e.g. ``atlas_template`` from ``--atlas NAME``).
    """

    name: str
    flags: tuple[str, ...]
    group: str | None
    help: str
    steps: tuple[str, ...]
    hashed: bool
    default: Any = None
    type: Callable | None = None
    choices: tuple | None = None
    nargs: Any = None
    metavar: Any = None
    action: str = "store"
    none_word: bool = False
    node_input: str | None = None
    example: Any = None
    hidden_flags: tuple[str, ...] = ()
    derived: bool = False
    input_file: bool = False
    names_columns: bool = False

    @property
    def is_list(self) -> bool:
        """Whether the value is a sequence (stored as a tuple in the settings)."""
        return self.nargs in ("+", "*") or isinstance(self.nargs, int)

    @property
    def parser_default(self) -> Any:
        """The default as argparse holds it (lists for sequences, ``"none"`` for none words)."""
        if self.is_list:
            return list(self.default)
        if self.none_word and self.default is None:
            return "none"
        return self.default

    def argparse_kwargs(self) -> dict:
        """Keyword arguments of ``add_argument`` for this option."""
        if not self.flags:
            return {"type": self.type, "help": self.help} if self.type else {"help": self.help}
        action = {"boolean_optional": argparse.BooleanOptionalAction}.get(self.action, self.action)
        kw: dict = {"dest": self.name, "action": action, "help": self.help, "default": self.parser_default}
        if self.action == "store":
            kw.update({k: v for k, v in (("type", self.type), ("nargs", self.nargs), ("metavar", self.metavar))
                       if v is not None})
            if self.nargs == "+":
                kw["action"] = ExtendList
            if self.choices is not None:
                kw["choices"] = self.choices
        return kw


FILTERS = "Options for filtering BIDS queries"
MASKS = "Options for the mask and the atlas"
DENOISING = "Options for denoising (fMRIPrep confounds, nilearn's strategies)"
CLEANING = "Options for signal cleaning and filters (nilearn.signal.clean order)"
TRIALS = "Options for trials (events.tsv)"
OUTPUTS = "Options for outputs"
GROUP = "Options for the group level (denoising benchmark)"
PERFORMANCE = "Options to handle performance"
OTHER = "Other options"

_STRATEGY = "(default: the --denoise strategy's; ignored by strategies that do not use it)"
_CLEAN = ("cleaning",)

# fmt: off
OPTIONS: tuple[Option, ...] = (
    Option("bids_dir", (), None, "BIDS dataset (raw) or the fMRIPrep folder itself", ("collection",), False,
           REQUIRED, type=Path),
    Option("output_dir", (), None, "output folder (BIDS-Derivatives)", ("outputs",), False, REQUIRED, type=Path),
    Option("analysis_level", (), None,
           "participant: process runs; group: summary table, masks and denoising benchmark", ("execution",),
           False, "participant"),
    Option("fmriprep_dir", ("--fmriprep-dir",), FILTERS,
           "fMRIPrep outputs (default: <bids_dir>/derivatives/fmriprep, or bids_dir itself when it "
           "is a derivatives dataset)", ("collection",), False, type=Path, example=Path("fmriprep")),
    Option("participant_label", ("--participant-label",), FILTERS,
           "participants to process, 01 or sub-01 (default: all)", ("collection",), False, (), nargs="+",
           node_input="participants", example=("01",), hidden_flags=("--participant_label",)),
    Option("session_label", ("--session-label",), FILTERS, "sessions to process (default: all)", ("collection",),
           False, (), nargs="+", node_input="sessions", example=("1",), hidden_flags=("--session_label",)),
    Option("task", ("--task",), FILTERS, "tasks to process (default: all)", ("collection",), False, (), nargs="+",
           node_input="tasks", example=("rest",)),
    Option("run", ("--run",), FILTERS, "runs to process (default: all)", ("collection",), False, (), nargs="+",
           node_input="runs", example=("1",)),
    Option("space", ("--space",), FILTERS,
           "fMRIPrep output space of the BOLD runs (T1w; func for the native BOLD grid; fsLR for "
           "CIFTI-2 dtseries, fsaverage5, fsaverage6 or fsnative for GIFTI func.gii pairs: columns are "
           "grayordinates)", ("collection", "mask"), True, "MNI152NLin2009cAsym", example="T1w"),
    Option("den", ("--den",), FILTERS, "den- entity of the runs, e.g. 91k for fsLR (default: any)",
           ("collection",), False, example="91k"),
    Option("surface", ("--surface",), FILTERS,
           "grayordinate runs: the fMRIPrep anat surface (hemi-L|R_[space-X_den-Y_]<surface>.surf.gii) "
           "whose vertex coordinates are the x, y, z of surface columns (n/a when absent, or none)",
           ("collection",), True, "midthickness", choices=SURFACES),
    Option("mask_strategy", ("--mask-strategy",), MASKS,
           "which voxels are columns: fMRIPrep's brain mask, nilearn's background / epi mask of "
           "the run's mean, or a TemplateFlow MNI152NLin2009cAsym mask (whole-brain, gm, wm)",
           ("mask", "outputs"), True, "fmriprep", choices=MASK_STRATEGIES, node_input="strategy"),
    Option("resample_mask", ("--resample-mask",), MASKS,
           "resample a mask or atlas on another grid to the run (nearest neighbour) "
           "(default: off: a grid mismatch is an error)", ("mask", "masking"), True, False, action="store_true"),
    Option("atlas", ("--atlas",), MASKS,
           "labels image (integer regions, 0 = background): columns become regions; a 4D image of "
           "probabilistic maps: columns become maps, fitted as nilearn's NiftiMapsMasker; or a TemplateFlow "
           "atlas by name, NAME[:desc-DESC][:res-RES] (e.g. Schaefer2018:desc-400Parcels7Networks), read "
           "from the local cache in the runs' space (default: none, columns are voxels)", ("masking",), True,
           type=Path, node_input="atlas_file", example=Path("atlas.nii.gz"), input_file=True, names_columns=True),
    Option("atlas_template", (), MASKS, "TemplateFlow atlas named by --atlas NAME[:desc-DESC][:res-RES]; each run's "
           "settings hold the file it resolves to (bidsapp.cli.plan.run_settings)", ("masking",), True,
           derived=True),
    Option("atlas_labels", ("--atlas-labels",), MASKS,
           "label table (dseg.tsv: index, name) (default: none, regions are named region-<label>)",
           ("masking",), True, type=Path, example=Path("atlas.tsv"), input_file=True),
    Option("atlas_name", ("--atlas-name",), MASKS,
           "atlas- entity of outputs (default: from the file of the option that defines the columns, e.g. --atlas; "
           "the option's name when it takes several files)",
           ("outputs",), True, example="schaefer"),
    Option("spheres", ("--spheres",), MASKS,
           "seeds table (TSV: x, y, z in mm, optional name): columns become the mean of the mask voxels "
           "in a sphere around each seed, as nilearn's NiftiSpheresMasker (default: none)", ("masking",), True,
           type=Path, node_input="column_args", example=Path("seeds.tsv"), input_file=True, names_columns=True),
    Option("roi_masks", ("--roi-masks",), MASKS,
           "binary ROI masks on the runs' grid (e.g. localizer ROIs): columns become the mean of the mask voxels "
           "in each ROI; ROIs may overlap; names from each file's label- or desc- entity, else its name "
           "(default: none)", ("masking",), True, (), type=Path, nargs="+", metavar="FILE",
           node_input="column_args", example=(Path("label-FFA_mask.nii.gz"),), input_file=True, names_columns=True),
    Option("sphere_radius", ("--sphere-radius",), MASKS,
           "radius of the --spheres in mm (default: the voxel of the seed only)", ("masking",), True,
           type=positive(float, strict=False), metavar="MM", node_input="column_args", example=5.0),
    Option("allow_overlap", ("--allow-overlap",), MASKS,
           "let --spheres share voxels (default: off: overlapping spheres are an error)", ("masking",), True,
           False, action="store_true", node_input="column_args"),
    Option("min_coverage", ("--min-coverage",), MASKS,
           "regions (atlas labels, maps, spheres) with less than this fraction of their extent inside the mask "
           "become columns of NaN, with the reason in _features.tsv (0 keeps every region) (default: 0.5, as "
           "XCP-D)", ("masking",), True, 0.5, type=fraction, metavar="F", example=0.8),
    Option("denoise", ("--denoise",), DENOISING, "nilearn load_confounds_strategy preset",
           ("collection", "cleaning", "outputs"), True, "simple", choices=STRATEGIES),
    Option("confounds", ("--confounds",), DENOISING,
           "confound columns regressed out instead of the --denoise strategy's regressors (its censoring, e.g. "
           "scrubbing, still applies) (default: none: the strategy's regressors)",
           _CLEAN, True, (), nargs="+", metavar="COL", node_input="confound_columns", example=("csf",)),
    Option("motion", ("--motion",), DENOISING, f"motion parameters expansion {_STRATEGY}", _CLEAN, True,
           choices=MODELS, node_input="strategy_params"),
    Option("wm_csf", ("--wm-csf",), DENOISING, f"white matter and CSF signals expansion {_STRATEGY}", _CLEAN, True,
           choices=MODELS, node_input="strategy_params"),
    Option("global_signal", ("--global-signal",), DENOISING, f"global signal expansion {_STRATEGY}", _CLEAN, True,
           choices=MODELS, node_input="strategy_params"),
    Option("scrub", ("--scrub",), DENOISING,
           f"also censor segments of kept volumes shorter than this many volumes {_STRATEGY}", _CLEAN, True,
           type=positive(int, strict=False), node_input="strategy_params", example=3),
    Option("fd_threshold", ("--fd-threshold",), DENOISING,
           f"framewise displacement censoring threshold, mm {_STRATEGY}", _CLEAN, True, type=positive(float),
           node_input="strategy_params", example=0.3),
    Option("std_dvars_threshold", ("--std-dvars-threshold",), DENOISING,
           f"standardized DVARS censoring threshold {_STRATEGY}", _CLEAN, True, type=positive(float),
           node_input="strategy_params", example=2.5),
    Option("compcor", ("--compcor",), DENOISING, f"CompCor components to use {_STRATEGY}", _CLEAN, True,
           choices=COMPCOR, node_input="strategy_params"),
    Option("n_compcor", ("--n-compcor",), DENOISING, f"number of CompCor components, or all {_STRATEGY}", _CLEAN,
           True, type=n_compcor, node_input="strategy_params", example=4),
    Option("demean", ("--no-demean",), DENOISING, "do not demean the confounds (default: demeaned)", _CLEAN, True,
           True, action="store_false", node_input="strategy_params"),
    Option("dummy_scans", ("--dummy-scans",), DENOISING,
           "non-steady-state volumes censored with every strategy, none included: auto = fMRIPrep's "
           "non_steady_state_outlier columns (none without a confounds file), N = the first N volumes",
           _CLEAN, True, "auto", type=parse_dummy_scans, metavar="auto|N", example=2),
    Option("detrend", ("--detrend",), CLEANING,
           "remove linear trends from signals and confounds (default: %(default)s)", _CLEAN, True, True,
           action="boolean_optional"),
    Option("standardize", ("--standardize",), CLEANING, "scaling of each column after cleaning", _CLEAN, True,
           "zscore_sample", choices=("zscore_sample", "psc", "none"), none_word=True),
    Option("standardize_confounds", ("--no-standardize-confounds",), CLEANING,
           "do not z-score the confounds before regression (default: z-scored)", _CLEAN, True, True,
           action="store_false"),
    Option("low_pass", ("--low-pass",), CLEANING, "low-pass cut-off in Hz (default: none)", _CLEAN, True,
           type=none_or(positive(float), "a frequency in Hz"), metavar="HZ", example=0.1),
    Option("high_pass", ("--high-pass",), CLEANING, "high-pass cut-off in Hz (default: none)", _CLEAN, True,
           type=none_or(positive(float), "a frequency in Hz"), metavar="HZ", example=0.01),
    Option("filter", ("--filter",), CLEANING, "temporal filter for --low-pass / --high-pass (cosine: DCT high-pass)",
           _CLEAN, True, "butterworth", choices=("butterworth", "cosine", "none"), none_word=True),
    Option("smoothing_fwhm", ("--smoothing-fwhm",), CLEANING,
           "spatial smoothing FWHM in mm, inside the mask (default: none)", ("masking",), True,
           type=none_or(positive(float, strict=False), "a distance in mm"), metavar="MM", example=6.0),
    Option("t_r", ("--t-r",), CLEANING, "override RepetitionTime, in s (default: from the BOLD JSON)",
           ("cleaning", "segmentation", "outputs"), True, type=positive(float), example=2.5),
    Option("hrf_lag", ("--hrf-lag",), TRIALS,
           "shift of the trial labels of rows, e.g. 5 to label volumes by the expected haemodynamic peak",
           ("segmentation",), True, 0.0, type=float, metavar="SECONDS", example=5.0),
    Option("trial_window", ("--trial-window",), TRIALS, "per-trial segments: seconds from each onset, sampled every TR",
           ("segmentation",), True, (-2.0, 16.0), type=float, nargs=2, metavar=("START", "END"),
           example=(0.0, 12.0)),
    Option("trial_edge", ("--trial-edge",), TRIALS,
           "segment samples needing a censored volume or outside the run: NaN, or drop the trial",
           ("segmentation",), True, "nan", choices=("drop", "nan")),
    Option("trial_estimates", ("--trial-estimates",), TRIALS,
           "trial-wise estimates written as _betas (lss: least squares separate, one model per trial with the "
           "other trials grouped by trial_type; lsa: least squares all, one model per run with one regressor per "
           "trial, trial_type unused; optimized: the runs of a participant and task fitted together with "
           "--hrf library (one shape per column for all runs), --trial-denoise pca and --trial-ridge, tuned only "
           "on label-free targets or --trial-repeats, never on trial_type)", ("segmentation",), True, None,
           choices=TRIAL_MODELS, none_word=True),
    Option("hrf", ("--hrf",), TRIALS,
           "haemodynamic response of the trial-wise estimates: spm, glover, spm+derivative, "
           "spm+derivative+dispersion (a trial's beta is the canonical regressor's coefficient), fir (one "
           "regressor per TR bin of --trial-window per trial: one _betas row per trial and bin), library (one of "
           "20 shapes per column, chosen by label-free cross-validation, _hrf.tsv) (default: %(default)s)",
           ("segmentation",), True, "spm", choices=HRF_MODELS),
    Option("trial_denoise", ("--trial-denoise",), TRIALS,
           "pca: data-driven noise regressors for the trial estimates (principal components of the residuals "
           "of columns the task does not explain; their number chosen per participant by predicting held-out "
           "runs; needs --trial-estimates optimized, or lsa with --trial-ridge) (default: none; on with "
           "--trial-estimates optimized)", ("segmentation",), True, None,
           choices=("pca", "none"), none_word=True),
    Option("trial_ridge", ("--trial-ridge",), TRIALS,
           "fractional ridge on a per-run model with one regressor per trial, the fraction chosen per column "
           "by cross-validation; needs --trial-estimates lsa or optimized (default: off; on with --trial-estimates "
           "optimized)", ("segmentation",), True,
           False, action="store_true"),
    Option("trial_repeats", ("--trial-repeats",), TRIALS,
           "events.tsv column whose equal values are repeats of one stimulus (e.g. stimulus_id): the only "
           "label-based cross-validation target allowed, recorded in the sidecar; also gives a split-half "
           "reliability per column; needs --trial-estimates optimized or lsa --trial-ridge. The values of every run, "
           "held-out runs included, tune the model: if the column determines the label you decode, held-out "
           "labels shape the training runs' betas (default: none, label-free targets)", ("segmentation",), True,
           metavar="COLUMN", example="stimulus_id"),
    Option("output_format", ("--output-format",), OUTPUTS,
           f"array formats written ({format_help()}); npy or tsv.gz must be one of them (bidsapp.load, the "
           "report and the group level read the rows from them)",
           ("outputs",), True, ("npy",), choices=OUTPUT_FORMATS, nargs="+"),
    Option("connectivity", ("--connectivity",), OUTPUTS,
           "connectivity matrices of region, map or sphere columns, one _relmat.tsv per run and measure, equal to "
           "nilearn's ConnectivityMeasure (Ledoit-Wolf covariance) (default: none)", ("outputs",), True, (),
           choices=CONNECTIVITY_MEASURES, nargs="+"),
    Option("fisher_z", ("--fisher-z",), OUTPUTS,
           "Fisher z-transform (arctanh) the correlation and partial-correlation matrices (default: off)",
           ("outputs",), True, False, action="store_true"),
    Option("desc", ("--desc",), OUTPUTS,
           "desc- entity of outputs, naming a variant of the settings (default: the --denoise strategy)",
           ("outputs",), False, metavar="LABEL", node_input="desc_option", example="variant"),
    Option("replace_outputs", ("--replace-outputs",), OUTPUTS,
           "outputs of the same name made with other settings (or another atlas file) are redone or "
           "invalidated (default: off: such a run is refused, the output folder keeps one meaning per name)",
           ("execution", "outputs"), False, False, action="store_true"),
    Option("exclude_fd_mean", ("--exclude-fd-mean",), GROUP,
           "denoising benchmark: leave out runs whose mean framewise displacement exceeds this, in mm, or none "
           "(default: %(default)s, the fMRIPrep denoising benchmark's stringent rule; its minimal rule: 0.55)",
           ("group",), False, 0.25, type=none_or(positive(float), "a number in mm"), metavar="MM", none_word=True,
           example=0.55),
    Option("exclude_censored_fraction", ("--exclude-censored-fraction",), GROUP,
           "denoising benchmark: leave out runs with more than this share of volumes above "
           "--exclude-fd-threshold (high_motion_fraction of group_denoising_runs.tsv, the same for every "
           "strategy), or none (default: %(default)s)", ("group",), False, 0.8,
           type=none_or(fraction, "a fraction between 0 and 1"), metavar="F", none_word=True, example=0.5),
    Option("exclude_fd_threshold", ("--exclude-fd-threshold",), GROUP,
           "framewise displacement above which a volume counts for --exclude-censored-fraction, in mm "
           "(default: %(default)s)", ("group",), False, 0.2, type=positive(float), metavar="MM", example=0.5),
    Option("nprocs", ("--nprocs",), PERFORMANCE, "parallel processes (default: available cores)", ("execution",),
           False, type=positive(int)),
    Option("mem_gb", ("--mem-gb",), PERFORMANCE,
           "memory MultiProc may use at once; each node declares its estimated peak, computed "
           "from the run's size (default: 90%% of the machine's memory)", ("execution",), False,
           type=positive(float), metavar="GB"),
    Option("plugin", ("--plugin",), PERFORMANCE,
           "nipype execution plugin (MultiProc, --nprocs 1 and one run: nodes run in this process, as Linear)",
           ("execution",), False, "MultiProc",
           choices=PLUGINS),
    Option("plugin_args", ("--plugin-args",), PERFORMANCE, "JSON dict passed to the nipype plugin (default: none)",
           ("execution",), False),
    Option("work_dir", ("--work-dir",), PERFORMANCE,
           "nipype working directory, kept and locked, to resume (default: a temporary folder "
           "of this invocation, removed on success; required with cluster plugins)", ("execution",), False,
           type=Path),
    Option("config", ("--config",), OTHER, "settings file (.json or .toml) with any option above (default: none)",
           ("execution",), False, type=Path),
    Option("verbose", ("-v", "--verbose"), OTHER, "show tracebacks and nipype logs (default: off)", ("execution",),
           False, False, action="store_true"),
)
# fmt: on

BY_NAME: dict[str, Option] = {o.name: o for o in OPTIONS}
#: options naming input files (see :attr:`Option.input_file`)
INPUT_FILES: tuple[str, ...] = tuple(o.name for o in OPTIONS if o.input_file)
#: settings that do not change the numbers written (left out of the configuration hash)
NON_RESULT_FIELDS = frozenset(o.name for o in OPTIONS if not o.hashed)
#: options that tune a denoising strategy (ignored, with a warning, by strategies that do not use them)
STRATEGY_PARAMETERS = tuple(o.name for o in OPTIONS if o.node_input == "strategy_params" and o.name != "demean")


def changed(settings, options) -> list[Option]:
    """The ``options`` whose value in ``settings`` is not their default (lists and tuples alike)."""
    def plain(value: Any) -> Any:
        return tuple(value) if isinstance(value, list) else value

    return [o for o in options if plain(getattr(settings, o.name, o.default)) != plain(o.default)]


def _node_value(value: Any) -> Any:
    """A settings value as a node input: paths as strings, tuples as lists (trial_window stays a tuple)."""
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, tuple):
        return [str(v) if isinstance(v, Path) else v for v in value]
    return value


def step_specs(settings) -> dict[str, dict]:
    """Each step's inputs under these settings: ``{step: {node input: value}}``, built from :data:`OPTIONS`.

    The node of a step is built with ``Interface(**specs[step], <run's values>)``: every option whose row
    names the step reaches that node, under its ``node_input`` name. Strategy parameters the denoising
    strategy does not use are left out (as they are from the hash). The outputs step also gets what is
    derived from several options: the ``desc`` and mask ``desc`` labels, the settings recorded in the
    sidecar, the configuration hash, and ``move_work_files`` (no ``--work-dir``: the sink may move node files
    into the outputs, see :meth:`bidsapp.outputs.transaction.RunWriter.install`; the cleaning node's
    ``hash_cleaned`` follows it).
    """
    from bidsapp.bids import naming
    from bidsapp.core.confounds import inapplicable_parameters

    specs: dict[str, dict] = {step: {} for step in STEPS}
    for option in OPTIONS:
        value = getattr(settings, option.name)
        for step in option.steps:
            key = option.node_input or option.name
            if option.derived:
                continue  # set from another option (and per run), never a node input of its own
            if key in DICT_INPUTS:
                specs[step].setdefault(key, {})
                if value is not None:
                    specs[step][key][option.name] = value if key == "strategy_params" else _node_value(value)
            else:
                keep = step not in NODE_STEPS or option.name == "trial_window"
                specs[step][key] = value if keep else _node_value(value)
    params = specs["cleaning"]["strategy_params"]
    for unused in inapplicable_parameters(settings.denoise, params, settings.confounds):
        del params[unused]
    specs["collection"]["bold_desc"] = "smoothAROMAnonaggr" if settings.denoise == "ica_aroma" else "preproc"
    del specs["collection"]["denoise"]
    del specs["outputs"]["desc_option"], specs["outputs"]["denoise"]  # both name the outputs: desc_label
    specs["outputs"].update(desc=settings.desc_label,
                            mask_desc=naming.mask_desc(specs["outputs"].pop("strategy")),
                            settings=settings.result_settings(), configuration_hash=settings.configuration_hash())
    # the one decision whether the sink may move node files into the outputs: only when the work folder is this
    # invocation's private one (removed after it); a --work-dir is kept for later invocations to resume from.
    # The cleaning node hashes its array while writing it only for a sink that moves it (a copy is hashed anyway)
    move = settings.work_dir is None
    specs["outputs"]["move_work_files"] = specs["cleaning"]["hash_cleaned"] = move
    specs["cleaning"]["take_timeseries"] = move  # and the cleaning node cleans the masking node's array in its file
    return specs

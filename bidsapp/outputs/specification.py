"""The outputs specification: every file bidsapp can write, as name patterns, and every key of a run's sidecar.

The documentation's Outputs page is rendered from these tables (with the column descriptions the JSON
sidecars of the TSV files use, :mod:`bidsapp.outputs.descriptions`), and ``tests/test_outputs_specification.py``
checks them against real outputs in both directions: every file of the demo's (and of a few more runs') output
folder matches a pattern, and every pattern is matched by some file those runs wrote. A tool can validate an
output folder with :func:`unmatched` (``python -m bidsapp.outputs.specification OUTPUT_DIR`` lists the files that
match no pattern, exit 1 when there are any).

Patterns are relative to the output folder. ``[...]`` is optional; ``<name>`` is a placeholder from
:data:`PLACEHOLDERS` (some expand to other patterns, e.g. ``<run>``); everything else is literal.
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from bidsapp.core.names import MASK_STRATEGIES

_LABEL = "[A-Za-z0-9]+"
_MASK_DESCS = tuple("brain" if s == "fmriprep" else s.replace("-", "") for s in MASK_STRATEGIES)

#: placeholder -> (pattern it expands to (``re:`` a regular expression), what it means)
PLACEHOLDERS: dict[str, tuple[str, str]] = {
    "label": ("re:" + _LABEL, "a BIDS label: letters and digits"),
    "run": ("sub-<label>/[ses-<label>/]func/sub-<label>[_ses-<label>][_task-<label>][_acq-<label>][_ce-<label>]"
            "[_rec-<label>][_dir-<label>][_run-<label>][_echo-<label>][_part-<label>]",
            "the source BOLD run's folder and its identifying entities, as fMRIPrep named them"),
    "space": ("[_space-<label>][_cohort-<label>]",
              "the source's space and cohort (left out for runs on the native BOLD grid, space-func)"),
    "grid": ("[_res-<label>][_den-<label>]", "the source's resolution and density entities"),
    "desc": ("re:" + _LABEL, "the variant of the settings: --desc, default the --denoise strategy "
             "(ica_aroma -> icaaroma)"),
    "atlas": ("re:" + _LABEL, "--atlas-name, default from the --atlas or --spheres file name, or the "
              "TemplateFlow atlas name and desc"),
    "maskdesc": ("re:(?:" + "|".join(_MASK_DESCS) + ")",
                 "the mask strategy: " + ", ".join(f"{d}" for d in _MASK_DESCS) + " (brain: fMRIPrep's mask)"),
    "hemi": ("re:[LR]", "L or R"),
    "stamp": ("re:[0-9]{8}T[0-9]{6}-[0-9]+-[0-9a-f]+", "start time (UTC), process id and a random suffix"),
    "sha1": ("re:[0-9a-f]{40}", "SHA-1 of the input file's identity (path, size, times, inode)"),
    "identity": ("re:sub-" + _LABEL + "(?:_[a-z]+-" + _LABEL + ")*", "the run's source entities"),
    "variant": ("re:[a-z]+-" + _LABEL + "(?:_[a-z]+-" + _LABEL + ")*",
                "the entities of an output name that do not name the run (space, atlas, res, den, desc)"),
}


@dataclass(frozen=True)
class OutputFile:
    """One kind of output file.

    Attributes
    ----------
    patterns : tuple of str
        Name patterns (relative to the output folder); several when files go together (a TSV and its JSON).
    what : str
        What the file holds.
    when : str
        When it is written.
    level : str
        ``run`` (one per run), ``dataset`` (one per output folder) or ``group`` (the group level).
    table : str or None
        For TSV files, the table kind whose column descriptions (the JSON sidecar beside it) the page lists.
    """

    patterns: tuple[str, ...]
    what: str
    when: str
    level: str = "run"
    table: str | None = None


_RUN = "<run><space>[_atlas-<atlas>]<grid>_desc-<desc>"

OUTPUTS: tuple[OutputFile, ...] = (
    OutputFile((f"{_RUN}_timeseries.npy",),
               "The cleaned array: float32, kept volumes x columns (NumPy format; `numpy.load(f, mmap_mode='r')`).",
               "`--output-format npy` (the default)"),
    OutputFile((f"{_RUN}_timeseries.json",),
               "The run's sidecar: provenance, every parameter, what the rows and columns are, and the list of "
               "the run's output files with their sizes and SHA-256 (written last: a run without it is "
               "incomplete). Keys below.", "always"),
    OutputFile((f"{_RUN}_samples.tsv", f"{_RUN}_samples.json"),
               "One row per volume of the run (kept or censored): time, censoring, trial labels.", "always",
               table="samples"),
    OutputFile((f"{_RUN}_features.tsv", f"{_RUN}_features.json"),
               "One row per column of the array: what brain location it is (columns depend on the column "
               "space).", "always", table="features"),
    OutputFile(("<run><space><grid>_desc-<maskdesc>_mask.nii.gz",),
               "The mask used (uint8, on the run's grid); named by mask strategy so that outputs of different "
               "masks never share a mask file.", "volume runs"),
    OutputFile(("<run><space><grid>_desc-brain_mask.dscalar.nii",),
               "The run's columns (its CIFTI brain models), ones.", "grayordinate runs (CIFTI-2, GIFTI)"),
    OutputFile((f"{_RUN}_trials.npy", f"{_RUN}_trials.tsv", f"{_RUN}_trials.json"),
               "Per-trial segments, float32 (trials x offsets x columns), sampled every TR in --trial-window, and "
               "one row per trial of events.tsv.", "the run has an events.tsv", table="trials"),
    OutputFile((f"{_RUN}_betas.npy", f"{_RUN}_betas.tsv", f"{_RUN}_betas.json"),
               "Trial-wise estimates of the model --trial-estimates names (lss: least squares separate, one model "
               "per trial with the other trials grouped by trial_type; lsa: least squares all, one model per run; "
               "optimized: the participant's runs joined, with noise regressors and fractional ridge on the lsa "
               "model; --hrf fir: one row per trial and bin), float32 (trials x columns), and one row per trial "
               "with its reliability.", "`--trial-estimates lss|lsa|optimized` (default: none, no _betas) and an "
               "events.tsv", table="betas"),
    OutputFile((f"{_RUN}_hrf.tsv", f"{_RUN}_hrf.json"),
               "One row per column: the R² of the trial model (and with `--hrf library` the shape chosen for the "
               "column and its held-out R²).", "`--trial-estimates lss|lsa` and an events.tsv", table="hrf"),
    OutputFile((f"{_RUN}_betaquality.tsv", f"{_RUN}_betaquality.json"),
               "One row per column: the R² of the participant's joined trial model, the ridge fraction, whether "
               "the column is in the noise pool and (with --trial-repeats) its split-half reliability.",
               "`--trial-estimates optimized`, `--trial-denoise pca` or `--trial-ridge`, and an events.tsv",
               table="betaquality"),
    OutputFile((f"{_RUN}_meas-<label>_relmat.tsv", f"{_RUN}_meas-<label>_relmat.json"),
               "A connectivity matrix of the region, map or sphere columns (BIDS connectivity derivative names, "
               "BEP017): a `node` column then one column per node; meas-PearsonCorrelation, PartialCorrelation or "
               "Covariance (Ledoit-Wolf, as nilearn's ConnectivityMeasure); the JSON gives the measure, Fisher z, "
               "samples and the nodes left out of the estimate (n/a rows and columns): ExcludedNodes, with "
               "ExcludedNodesReasons (coverage below --min-coverage, or no variance over the run's kept volumes).",
               "`--connectivity` (one pair per measure)"),
    OutputFile((f"{_RUN}_reportdata.npz",),
               "What the participant report draws: up to 2,000 columns before and after cleaning (uint8 z-scores), "
               "standardized DVARS before and after, and the run's mean image (volume runs).", "always"),
    OutputFile((f"{_RUN}_timeseries.tsv.gz",),
               "The cleaned array as a gzipped TSV with one header per column (region names in atlas modes).",
               "`--output-format tsv.gz`, and always in atlas, maps and spheres modes"),
    OutputFile((f"{_RUN}_bold.nii.gz",), "The cleaned rows as a 4D NIfTI image (the inverse of the masking).",
               "volume runs, `--output-format nii.gz`"),
    OutputFile((f"{_RUN}_bold.dtseries.nii",), "The cleaned rows as a CIFTI-2 dtseries.",
               "grayordinate runs, `--output-format dtseries.nii`"),
    OutputFile(("<run>_hemi-<hemi><space>[_atlas-<atlas>]<grid>_desc-<desc>_bold.func.gii",),
               "The cleaned rows as one GIFTI file per hemisphere.", "GIFTI runs, `--output-format func.gii`"),
    OutputFile(("<run><space>_atlas-<atlas><grid>_dseg.nii.gz",),
               "The labels atlas on the run's grid, inside the run's mask (the voxels each column averages; what "
               "`to_image` paints), with the atlas's label values.", "`--atlas` with a labels image"),
    OutputFile(("<run><space>_atlas-<atlas><grid>_probseg.nii.gz",),
               "The maps on the run's grid, one volume per column (maps; spheres as 0/1 volumes).",
               "`--atlas` with a 4D image of maps, or `--spheres`"),
    OutputFile(("<run><space>_atlas-<atlas><grid>_dseg.dlabel.nii",),
               "The grayordinate atlas as a CIFTI-2 dlabel over the run's brain models.",
               "grayordinate runs with `--atlas` (dlabel.nii or label.gii pair)"),
    OutputFile(("dataset_description.json",),
               "BIDS-Derivatives description: `GeneratedBy` (bidsapp, then fMRIPrep), `SourceDatasets` and "
               "`DatasetLinks` (what the `bids:` URIs of the sidecars resolve against).", "always", "dataset"),
    OutputFile((".bidsignore",), "The non-standard suffixes bidsapp writes, for the BIDS validator.", "always",
               "dataset"),
    OutputFile(("sub-<label>.html",),
               "One self-contained report page per participant (what was done to each run, QC metrics, the "
               "columns over the mean image, carpet plot, trial timeline, connectivity, methods text).",
               "participant level", "dataset"),
    OutputFile(("logs/CITATION.md", "logs/CITATION.bib"),
               "Methods text written from the settings recorded in the run sidecars, and its references.",
               "participant level", "dataset"),
    OutputFile(("logs/settings-<stamp>.json",), "The command line and settings of one invocation.",
               "every invocation", "dataset"),
    OutputFile(("logs/checksums/<sha1>.json",),
               "Cached SHA-256 of an input file, keyed by its identity, so unchanged inputs are not read again.",
               "participant level", "dataset"),
    OutputFile(("logs/locks/<identity>.lock", "logs/locks/name-<variant>.lock",
                "logs/locks/model-sub-<label>_task-<label>.lock", "logs/locks/invocations.lock",
                "logs/.dataset_description.json.lock"),
               "Lock files: one per run (concurrent invocations write one run at a time), one per output name, "
               "one per participant and task of a joined trial model (held from planning to the end of an "
               "invocation; it names the invocation that holds it), one that every participant-level invocation "
               "holds shared while it runs (a refused invocation removes an output folder it created only when no "
               "other came into it) and one for the dataset description.", "participant level", "dataset"),
    OutputFile(("logs/names/<variant>.json",),
               "The settings an output name (space, atlas, desc, ...) was claimed with: one meaning per name, also "
               "between invocations running at once.", "participant level", "dataset"),
    OutputFile(("group_runs.tsv", "group_runs.json"),
               "One row per processed run: volumes kept, columns, mask voxels, mean framewise displacement.",
               "group level", "group", table="group_runs"),
    OutputFile(("group.html",), "The group report (the runs, and the denoising benchmark when runs have region "
               "columns).", "group level", "group"),
    OutputFile(("group_denoising.tsv", "group_denoising.json"),
               "The denoising benchmark, one row per strategy x atlas x space: QC-FC, distance dependence, loss of "
               "temporal degrees of freedom, runs excluded.", "group level, runs with region columns", "group",
               table="group_denoising"),
    OutputFile(("group_denoising_runs.tsv", "group_denoising_runs.json"),
               "Per run and strategy: mean FD, share of high-motion volumes, exclusion and why, degrees of freedom "
               "lost.", "group level, runs with region columns", "group", table="group_denoising_runs"),
    OutputFile(("group_denoising_edges.tsv", "group_denoising_edges.json"),
               "Per edge and strategy: the two regions, their distance, QC-FC, its p-value and FDR significance.",
               "group level, runs with region columns", "group", table="group_denoising_edges"),
    OutputFile(("space-<label>[_den-<label>]_desc-intersection_mask.nii.gz",
                "space-<label>[_den-<label>]_desc-intersection_mask.json"),
               "The voxels in the masks of every run of one space; the sidecar lists the masks intersected "
               "(`Sources`) and those left out, with why (`LeftOut`).", "group level, volume runs", "group"),
    OutputFile(("space-<label>[_den-<label>]_desc-intersection_mask.dscalar.nii",),
               "The grayordinates that are columns of every run of one space (JSON sidecar as above).",
               "group level, grayordinate runs", "group"),
)

#: key of a run's ``_timeseries.json`` -> (what it holds, when it is there)
SIDECAR_KEYS: dict[str, tuple[str, str]] = {
    "QC": ("QC metrics, each as {Value, Units}: framewise displacement mean and max, censored volumes and fraction, "
           "degrees of freedom kept and lost, standardized DVARS and median tSNR before and after cleaning, FD-DVARS "
           "correlation before and after, valid and invalid trials (bidsapp.core.qc.QC_FIELDS).", "always"),
    "Description": ("What the rows and columns of the array are.", "always"),
    "ColumnSpace": ("The kind of column: voxels, labels, maps, spheres, grayordinates or grayordinate_labels "
                    "(the loader and the group level read it).", "always"),
    "ColumnImage": ("The image the inverse uses (atlas, maps, spheres on the run's grid); null for voxels.",
                    "always"),
    "Grayordinates": ("Format of the source (CIFTI-2 dtseries or GIFTI pair), its hemispheres and where the "
                      "x, y, z of vertices came from (VertexCoordinates).", "grayordinate runs"),
    "Sources": ("Every input as a BIDS URI with its Role and SHA-256 (BOLD, mask, confounds and their JSON, "
                "events, atlas, surfaces, the BOLD JSON its TR came from; with a joined trial model, the other "
                "runs' inputs too, Role trial_model_<run>_<role>: a changed, added or removed run recomputes "
                "them all).", "always"),
    "RepetitionTime": ("TR in seconds (the BOLD JSON's, or --t-r).", "always"),
    "StartTime": ("Acquisition time of the first volume, seconds (fMRIPrep's StartTime when it corrected slice "
                  "timing; without it, the middle of the raw SliceTiming range when slice timing was not "
                  "corrected; else 0; StartTimeSource says which).", "always"),
    "StartTimeSource": ("Where StartTime came from.", "always"),
    "Shape": ("Shape of the array: [kept volumes, columns].", "always"),
    "DataType": ("Data type of the array (float32).", "always"),
    "MaskVoxelCount": ("Voxels in the mask (grayordinate runs: the brain models' size).", "always"),
    "MaskSource": ("Which mask was used and why.", "always"),
    "TemplateFile": ("The TemplateFlow file of a template mask strategy; null otherwise.", "always"),
    "ConfoundColumns": ("fMRIPrep confound columns regressed out.", "always"),
    "DenoiseParameters": ("The denoising strategy's parameters as applied.", "always"),
    "CensoredVolumes": ("Indices of the volumes left out of the array (non-steady-state, motion outliers).",
                        "always"),
    "ConfoundRankRemoved": ("Rank of the confound model regressed out.", "always"),
    "DegreesOfFreedom": ("Kept volumes minus the rank of everything removed (trend, filter, confounds, "
                         "standardization).", "always"),
    "CosineDrifts": ("Cosine drift regressors --filter cosine added to the confounds: 0 when a confound "
                     "correlates above 0.9 with one of them (fMRIPrep's cosine columns, or another slow drift; "
                     "nilearn's rule), so no high-pass of its own was applied (a warning names the confound).",
                     "with --filter cosine and --high-pass"),
    "NonSteadyState": ("Non-steady-state volumes: --dummy-scans, where they came from, which volumes.",
                       "always"),
    "NonFiniteValuesZeroed": ("NaN or infinite values inside the mask set to 0.", "always"),
    "Trials": ("The events file (BIDS URI), --hrf-lag, --trial-window, TrialOffsets, --trial-edge, counts of "
               "trials and valid trials; with LSS the HRF and the count of valid estimates. null without "
               "events.", "always"),
    "Parameters": ("Every setting that changes the numbers (what `bidsapp.dataset` compares).", "always"),
    "ConfigurationHash": ("Hash of Parameters: reruns reuse the run only when it matches.", "always"),
    "SoftwareVersions": ("Versions of bidsapp, Python and the numerical libraries.", "always"),
    "CodeFingerprint": ("SHA-256 of bidsapp's code and of the Python, numpy, scipy, nibabel, nipype and isal "
                        "versions: reruns reuse the run only when the same code would compute it.", "always"),
    "GeneratedBy": ("BIDS GeneratedBy entry of bidsapp (with the container image when run in one).", "always"),
    "StartedAt": ("When the run's processing started (ISO 8601, UTC).", "always"),
    "FinishedAt": ("When its outputs were written.", "always"),
    "DurationSeconds": ("Wall time of the run, seconds.", "always"),
    "OutputFiles": ("Every output of the run with its Size and SHA-256 (the sidecar is written last).",
                    "always"),
}


def _regex_of(pattern: str) -> str:
    """The regular expression of a name pattern (placeholders expanded, ``[...]`` optional)."""
    out, i = [], 0
    while i < len(pattern):
        ch = pattern[i]
        if ch == "<":
            end = pattern.index(">", i)
            name = pattern[i + 1:end]
            if name not in PLACEHOLDERS:
                raise ValueError(f"pattern {pattern!r}: unknown placeholder <{name}>; known: {sorted(PLACEHOLDERS)}")
            expansion = PLACEHOLDERS[name][0]
            out.append(expansion[3:] if expansion.startswith("re:") else _regex_of(expansion))
            i = end + 1
        elif ch == "[":
            out.append("(?:")
            i += 1
        elif ch == "]":
            out.append(")?")
            i += 1
        else:
            out.append(re.escape(ch))
            i += 1
    return "".join(out)


@cache
def compiled(pattern: str) -> re.Pattern:
    """The compiled regular expression that matches the whole relative path."""
    return re.compile(_regex_of(pattern) + r"\Z")


def all_patterns() -> list[str]:
    """Every name pattern of :data:`OUTPUTS`, in order."""
    return [p for entry in OUTPUTS for p in entry.patterns]


def match(relpath: str) -> list[str]:
    """The patterns a path relative to the output folder matches (POSIX separators)."""
    return [p for p in all_patterns() if compiled(p).match(relpath)]


def unmatched(output_dir: str | Path) -> list[str]:
    """Files of an output folder that match no pattern (hidden temporary files of a killed writer included)."""
    root = Path(output_dir)
    return sorted(str(p.relative_to(root).as_posix()) for p in root.rglob("*")
                  if p.is_file() and not match(p.relative_to(root).as_posix()))


if __name__ == "__main__":
    bad = unmatched(sys.argv[1])
    print("\n".join(bad) or "every file matches the specification")
    sys.exit(1 if bad else 0)

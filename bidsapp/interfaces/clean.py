"""Signal cleaning node: confound selection, censoring, detrend, filter, regress, standardize."""

from __future__ import annotations

import json
import warnings
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import numpy as np
from nipype.interfaces.base import BaseInterfaceInputSpec, File, SimpleInterface, TraitedSpec, traits

from bidsapp.core import carpet, qc, signal
from bidsapp.core import confounds as cf
from bidsapp.core.files import has_room, save_npy, sha256sum, write_text
from bidsapp.core.npy import RowsInPlace, map_writable, save_npy_hashed
from bidsapp.core.tsv import write_tsv
from bidsapp.execution.workdir import forget_node_result
from bidsapp.outputs.checksums import written_digest


class _CleanInput(BaseInterfaceInputSpec):
    timeseries = File(exists=True, mandatory=True)
    bold_file = traits.Str("", usedefault=True, desc="the run's BOLD file (named in errors)")
    n_nonfinite = traits.Int(0, usedefault=True, desc="non-finite values set to 0 by masking")
    nan_columns = traits.List(traits.Int, value=[], usedefault=True,
                              desc="columns of NaN (--min-coverage): left out of cleaning, NaN in the output")
    dummy_scans = traits.Either(traits.Int, traits.Str, default="auto", usedefault=True)
    confounds_file = traits.Either(None, File(exists=True), default=None, usedefault=True)
    confounds_json = traits.Either(None, File(exists=True), default=None, usedefault=True)
    denoise = traits.Str("simple", usedefault=True)
    confound_columns = traits.List(traits.Str, value=[], usedefault=True)
    strategy_params = traits.Dict(value={}, usedefault=True, desc="motion, wm_csf, scrub, ... (None = default)")
    t_r = traits.Float(mandatory=True)
    start_time = traits.Float(0.0, usedefault=True)
    detrend = traits.Bool(True, usedefault=True)
    standardize = traits.Either(None, traits.Enum("zscore_sample", "psc"), default="zscore_sample", usedefault=True)
    standardize_confounds = traits.Bool(True, usedefault=True)
    filter = traits.Either(None, traits.Enum("butterworth", "cosine"), default="butterworth", usedefault=True)
    low_pass = traits.Either(None, traits.Float, default=None, usedefault=True)
    high_pass = traits.Either(None, traits.Float, default=None, usedefault=True)
    hash_cleaned = traits.Bool(False, usedefault=True, desc="compute cleaned.npy's SHA-256 while writing it, for a "
                               "sink that moves it into the outputs (move_work_files)")
    take_timeseries = traits.Bool(False, usedefault=True, nohash=True,
                                  desc="the work folder is this invocation's private one (move_work_files): the "
                                       "masking node's array is renamed into cleaned.npy and cleaned there, and "
                                       "the masking node is forgotten (a resume of the folder runs it again)")


class _CleanOutput(TraitedSpec):
    cleaned = File(exists=True, desc="float32 (n_kept, n_features) .npy")
    cleaned_digest = traits.Dict(desc="its SHA-256, computed while writing it, and its identity then "
                                 "(bidsapp.outputs.checksums.written_digest)")
    samples = File(exists=True, desc="one row per volume (TSV)")
    info = File(exists=True, desc="confounds used, censored volumes (JSON)")
    operator = File(exists=True, desc="linear cleaning operator (n_kept, n_volumes) .npy")
    carpet = File(exists=True, desc="the report's carpet and the QC's DVARS traces (carpet.npz)")
    dof = traits.Int(desc="degrees of freedom left by cleaning")


def censoring_table(n: int, t_r: float, start_time: float, selection, kept_rows: np.ndarray, fd,
                    non_steady_state: np.ndarray | None = None) -> dict:
    """The samples table: one row per volume of the run."""
    row = np.full(n, None, dtype=object)
    row[kept_rows] = np.arange(kept_rows.size)
    kept = np.zeros(n, dtype=bool)
    kept[kept_rows] = True
    table = {
        "volume": np.arange(n),
        "onset": np.round(start_time + np.arange(n) * t_r, 6),
        "kept": kept,
        "row": row,
        "framewise_displacement": fd if fd is not None else np.full(n, np.nan),
    }
    if non_steady_state is not None:
        table["non_steady_state"] = non_steady_state
    if selection is not None:
        table["motion_outlier"] = selection.motion_outliers
    return table


def _in_thread(fn, *args, **kwargs) -> Future:
    """Run ``fn`` in a thread of its own (a file's SHA-256 while the QC runs: hashlib releases the GIL)."""
    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="bidsapp-hash")
    try:
        return pool.submit(fn, *args, **kwargs)
    finally:
        pool.shutdown(wait=False)  # the thread ends with its task


def _install_cleaned(rows: RowsInPlace, length: int, hashing) -> dict:
    """Rename the cleaned file into place; its SHA-256 (computed from the file while the QC ran) and
    identity when hashed (:func:`bidsapp.outputs.checksums.written_digest`), else {}."""
    sha = hashing.result() if hashing is not None else None
    path = rows.install(length)
    return written_digest(path, sha) if sha is not None else {}


def _warn_all_constant(std: np.ndarray) -> None:
    """One warning when every column with data is constant over time (its standard deviation before
    standardization is 0): the cleaned array is all zeros, which a real BOLD run never gives."""
    known = std[np.isfinite(std)]
    if known.size and not known.any():
        warnings.warn(f"every one of its {known.size} columns is constant over time, so the cleaned array is all "
                      "zeros; check that the BOLD file holds the run's data (not a constant or placeholder image).",
                      stacklevel=2)


class CleanSignals(SimpleInterface):
    """Clean the masked signals as nilearn.signal.clean, with fMRIPrep confounds."""

    input_spec = _CleanInput
    output_spec = _CleanOutput

    def _run_interface(self, runtime):
        name = Path(self.inputs.bold_file).name if self.inputs.bold_file else ""
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                result = self._clean(runtime)
        except ValueError as exc:
            if name and name not in str(exc):
                raise ValueError(f"{name}: {exc}") from exc
            raise
        for w in caught:  # name the run in the core's warnings
            text = str(w.message)
            warnings.warn(f"{name}: {text}" if name and name not in text else text, w.category, stacklevel=2)
        return result

    def _clean(self, runtime):
        cwd = Path(runtime.cwd)
        X, rows = self._load(cwd / "cleaned.npy")
        try:
            self._clean_array(cwd, X, rows)
        except BaseException:
            if rows is not None:
                rows.discard()
            raise
        return runtime

    def _load(self, target: Path) -> tuple[np.ndarray | None, RowsInPlace | None]:
        """The masked array and, for a float32 one without NaN columns, the output file it is cleaned into
        (:class:`RowsInPlace`: no fresh memory holds either): a C-order array (volumes) is copied to the output
        file and cleaned there in place (a volume run's, and a plain float32 dtseries', which the masking node
        writes a row per volume); a Fortran-order one is read from its map by column chunks into a new output
        file. Otherwise (regions with NaN columns, another dtype) the array alone. The array
        is None when it is the output's (``rows.array``)."""
        X = np.load(self.inputs.timeseries, mmap_mode="r")
        by_rows = X.flags.c_contiguous
        take = self.inputs.take_timeseries and by_rows
        fits = (X.dtype == np.float32 and X.ndim == 2 and not self.inputs.nan_columns
                and has_room(target.parent, 0 if take else 2 * X.nbytes))  # full disk: the plain path's OSError
        if not by_rows:  # a column-major array: read by column chunks from the map, cleaned into a new output file
            return X, RowsInPlace.new(target, X.shape) if fits else None
        if fits:  # the map's only reference is rows.array: dropped before the file is cut and renamed
            del X
            if take:
                forget_node_result(Path(self.inputs.timeseries).parent)  # before its array changes
                return None, RowsInPlace.take(self.inputs.timeseries, target)
            return None, RowsInPlace(self.inputs.timeseries, target)
        del X  # a plain read, not a copy of the map (whose pages would count twice)
        return np.load(self.inputs.timeseries), None

    def _clean_array(self, cwd: Path, X: np.ndarray | None, rows: RowsInPlace | None) -> None:
        X = rows.array if X is None else X
        n = X.shape[0]
        design = cf.run_design(n, self.inputs.confounds_file, self.inputs.confounds_json, self.inputs.denoise,
                               list(self.inputs.confound_columns), self.inputs.dummy_scans,
                               self.inputs.strategy_params)  # the rule the run's planning checked
        selection, fd, conf, sample_mask = design.selection, design.framewise_displacement, design.confounds, \
            design.sample_mask
        nss, nss_source = design.non_steady_state, design.non_steady_state_source
        op = signal.cleaning_operator(
            n, t_r=self.inputs.t_r, detrend=self.inputs.detrend, confounds=conf,
            standardize_confounds=self.inputs.standardize_confounds, filter=self.inputs.filter,
            low_pass=self.inputs.low_pass, high_pass=self.inputs.high_pass, sample_mask=sample_mask,
            confound_names=list(selection.names) if selection is not None else None,
        )
        dof = signal.check_degrees_of_freedom(op, self.inputs.standardize)
        nss_mask = nss if nss is not None and nss.any() else None
        columns = carpet.carpet_columns(X.shape[1], carpet.CARPET_COLUMNS)
        in_place = rows is not None and rows.array is X  # else a new output file, or none
        if in_place:  # its pages are in the page cache and the cleaning writes every one: mapped writable in one
            map_writable(X)  # call, not one fault per page (a new output file's pages are left to the faults)
        carpet_before = carpet.zscored_columns(X, columns)  # before X is cleaned in place
        before = qc.qc_before(X, fd=fd, non_steady_state=nss_mask, kept=op.kept)
        cleaned, std = self._apply(X, op, out=None if rows is None or in_place else rows.array[:op.kept.size])
        _warn_all_constant(std)
        if rows is not None:  # the file's header now says the kept rows; hashed while the QC reads them
            length = rows.keep(cleaned.shape[0])
            hashing = _in_thread(sha256sum, rows.tmp, 1 << 22, length=length) if self.inputs.hash_cleaned else None
        run_qc = qc.qc_after(before, cleaned, kept=op.kept, fd=fd, cleaned_std=std, dof=dof, n_volumes=n)
        drawn = carpet.CarpetData(before=carpet_before, columns=columns, dvars_before=run_qc.dvars_before,
                                  after=carpet.kept_rows(carpet.zscored_columns(cleaned, columns), op.kept, n),
                                  dvars_after=run_qc.dvars_after)
        np.savez(cwd / "carpet.npz", **drawn.arrays())
        if rows is None:
            digest = self._save_cleaned(np.ascontiguousarray(cleaned, dtype=np.float32), cwd / "cleaned.npy")
        del X, cleaned
        if rows is not None:
            digest = _install_cleaned(rows, length, hashing)
        write_tsv(cwd / "samples.tsv", censoring_table(n, self.inputs.t_r, self.inputs.start_time,
                                                       selection, op.kept, fd, nss))
        info = self._info(selection, op, dof, nss, nss_source, run_qc.metrics, n)
        write_text(cwd / "info.json", json.dumps(info, indent=2))
        save_npy(op.matrix, cwd / "operator.npy")
        self._results.update(operator=str(cwd / "operator.npy"), cleaned=str(cwd / "cleaned.npy"),
                             cleaned_digest=digest,
                             samples=str(cwd / "samples.tsv"), info=str(cwd / "info.json"), dof=dof,
                             carpet=str(cwd / "carpet.npz"))

    def _save_cleaned(self, cleaned: np.ndarray, path: Path) -> dict:
        """Save the cleaned array; with ``hash_cleaned``, its SHA-256 computed while it is written and the file's
        identity then (:func:`bidsapp.outputs.checksums.written_digest`, for a sink that moves it), else {}."""
        if not self.inputs.hash_cleaned:
            save_npy(cleaned, path)
            return {}
        return written_digest(path, save_npy_hashed(cleaned, path))

    def _info(self, selection, op: signal.CleaningOperator, dof, nss, nss_source: str, metrics: dict,
              n: int) -> dict:
        """The cleaning's record (``info.json``): confounds, censoring, degrees of freedom and QC metrics."""
        return {
            "ConfoundColumns": selection.names if selection is not None else [],
            "DenoiseParameters": {k: (list(v) if isinstance(v, tuple) else v)
                                  for k, v in (selection.parameters.items() if selection else [])},
            "CensoredVolumes": sorted(set(range(n)) - set(op.kept.tolist())),
            "ConfoundRankRemoved": op.n_confounds_used,
            "KeptVolumes": int(op.kept.size),
            "DegreesOfFreedom": dof,
            **({"CosineDrifts": op.n_drifts} if self.inputs.filter == "cosine" and self.inputs.high_pass else {}),
            "NonSteadyState": {"DummyScans": self.inputs.dummy_scans, "Source": nss_source,
                               "Volumes": np.flatnonzero(nss).tolist()},
            "NonFiniteValuesZeroed": self.inputs.n_nonfinite,
            "QC": {k: (None if isinstance(v, float) and not np.isfinite(v) else v) for k, v in metrics.items()},
            "QCColumns": "columns of the run's array (voxels of the mask, or regions)",
        }

    def _apply(self, X: np.ndarray, op: signal.CleaningOperator,
               out: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Clean the columns (into ``out`` when given, else in place when X allows), each column's standard
        deviation before standardization; the ``nan_columns`` (``--min-coverage``) are left out and stay NaN."""
        nan_columns = sorted(set(self.inputs.nan_columns))
        std = np.full(X.shape[1], np.nan)
        if not nan_columns:
            cleaned = signal.apply_operator(X, op, standardize=self.inputs.standardize, copy=False, out=out,
                                            column_std=std)
            return cleaned, std
        keep = np.setdiff1d(np.arange(X.shape[1]), nan_columns)  # regions: a small array
        cleaned = np.full((op.kept.size, X.shape[1]), np.nan, dtype=np.float32)
        part = np.empty(keep.size)
        if keep.size:
            cleaned[:, keep] = signal.apply_operator(np.ascontiguousarray(X[:, keep]), op,
                                                     standardize=self.inputs.standardize, column_std=part)
            std[keep] = part
        return cleaned, std

"""The output writers: one entry per kind of file a run's outputs hold.

Every file of a run's outputs is written by one :class:`Writer` of :data:`WRITERS`. An entry declares:

- ``option``: the ``--output-format`` value that asks for it (``None``: written whenever it applies);
- ``files``: the endings (``<suffix><extension>``) of the files it writes, which the loader and
  ``.bidsignore`` read from here;
- ``refuses``: why it cannot serve a column kind (the refusal message before the run), or ``None``;
- ``memory``: the bytes it adds to the derivatives node (the memory model);
- ``write``: how it writes, through the run's transaction (:class:`~bidsapp.outputs.transaction.RunWriter`).

A new output format is one entry here and its test; nothing else tests format names.
Heavy imports stay inside the write functions (``bidsapp --help`` imports this module).
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

#: rows of the array read at a time for the tsv.gz and nii.gz outputs (bounded memory)
ROW_BLOCK_BYTES = 64 * 2**20


@dataclass
class SinkContext:
    """What a writer needs from one run: staged inputs, the run's names and its column space."""

    writer: Any  # RunWriter
    naming: Any  # RunNaming
    output_dir: Path
    cleaned: str  # (n_rows, n_columns) float32 .npy
    shape: tuple[int, int]
    space_cls: type
    space: Any  # ColumnSpace rebuilt from the outputs
    features: dict[str, list]  # the features table (image kinds), else {}
    inputs: Any  # the sink's inputs (paths of node outputs, t_r, ...)
    image: Path | None = None  # the columns image, once written
    #: the sink's ``move_work_files``: files that only the sink reads after their node may be moved into the
    #: outputs instead of copied (:meth:`~bidsapp.outputs.transaction.RunWriter.install`)
    move: bool = False

    def path(self, suffix: str, extension: str, **entities) -> Path:
        """The output path of ``suffix`` + ``extension`` for this run (entities override the run's)."""
        return self.naming.path(self.output_dir, suffix, extension, **entities)

    def row_blocks(self) -> Iterator:
        """The cleaned array in blocks of rows (bounded memory)."""
        from bidsapp.core.npy import iter_npy_rows

        block = max(1, ROW_BLOCK_BYTES // (4 * max(1, self.shape[1])))
        return (b for _, b in iter_npy_rows(self.cleaned, block))


@dataclass(frozen=True)
class Writer:
    """One kind of output file (see the module docstring)."""

    name: str
    files: tuple[str, ...]
    write: Callable[[SinkContext], None]
    option: str | None = None
    help: str = ""
    refuses: Callable[[type, bool], str | None] = field(default=lambda space_cls, cifti: None)
    memory: Callable[[int, int], int] = field(default=lambda grid_voxels, n_columns: 0)
    always_for: Callable[[type], bool] = field(default=lambda space_cls: False)
    bidsignore: tuple[str, ...] = ()
    series: bool = False  # an image whose time axis has one step (the TR): censoring inside the run is warned
    read: Callable[[Path], Any] | None = None  # the rows back as a (n_rows, n_columns) array (loader)

    def wanted(self, formats: tuple[str, ...] | list[str], space_cls: type) -> bool:
        """Whether this run writes it: always, asked for with ``--output-format``, or always for this kind."""
        return self.option is None or self.option in formats or self.always_for(space_cls)


# -- the write functions ---------------------------------------------------------------------------------
def _npy(ctx: SinkContext) -> None:
    """The cleaned array; when moved, the writers after this one read it from its new place."""
    ctx.cleaned = str(ctx.writer.install(ctx.cleaned, ctx.path("timeseries", ".npy"), move=ctx.move,
                                         written=getattr(ctx.inputs, "cleaned_digest", None) or None))


def _install(attr: str, suffix: str, extension: str) -> Callable[[SinkContext], None]:
    def write(ctx: SinkContext) -> None:
        ctx.writer.install(getattr(ctx.inputs, attr), ctx.path(suffix, extension))
    return write


def _mask(ctx: SinkContext) -> None:
    ctx.writer.install(ctx.inputs.mask_file, ctx.path("mask", ctx.space_cls.mask_extension,
                                                      desc=ctx.inputs.mask_desc, atlas=None))


def _columns_image(ctx: SinkContext) -> None:
    if ctx.inputs.atlas_on_grid and ctx.space_cls.image:
        suffix, ext, desc = ctx.space_cls.image
        ctx.image = ctx.path(suffix, ext, desc=desc)
        ctx.writer.install(ctx.inputs.atlas_on_grid, ctx.image)


def _tsv_gz(ctx: SinkContext) -> None:
    from bidsapp.core.tsv import write_tsv_rows

    prefix = ctx.space_cls.column_prefix
    cols = ctx.features["name"] if "name" in ctx.features else [f"{prefix}-{c}" for c in range(ctx.shape[1])]
    with ctx.writer.put(ctx.path("timeseries", ".tsv.gz")) as tmp:
        write_tsv_rows(tmp, cols, ctx.row_blocks(), atomic=False)


def _nii_gz(ctx: SinkContext) -> None:
    import nibabel as nib

    from bidsapp.core.io import write_nifti_series

    mask_img = nib.load(ctx.inputs.mask_file)
    with ctx.writer.put(ctx.path("bold", ".nii.gz")) as tmp:
        write_nifti_series(tmp, ctx.space.inverse_rows(ctx.row_blocks()), shape=mask_img.shape[:3],
                           n_volumes=ctx.shape[0], affine=mask_img.affine, t_r=ctx.inputs.t_r, atomic=False)


def _grayordinate_values(ctx: SinkContext):
    import numpy as np

    X = np.load(ctx.cleaned, mmap_mode="r")
    return ctx.space.on_grayordinates_of(X)  # region columns: each region's values painted on its grayordinates


def _dtseries(ctx: SinkContext) -> None:
    """Rows are the kept volumes (their times: ``_samples.tsv``); the series starts at the first kept one."""
    from bidsapp.core import cifti
    from bidsapp.core.tsv import read_tsv

    header, rows = read_tsv(ctx.inputs.samples)
    first = [float(r[header.index("onset")]) for r in rows if r[header.index("row")] == "0"]
    with ctx.writer.put(ctx.path("bold", ".dtseries.nii")) as tmp:
        cifti.write_dense(tmp, _grayordinate_values(ctx), ctx.space.bm,
                          series=(first[0] if first else ctx.inputs.start_time, ctx.inputs.t_r))


def _func_gii(ctx: SinkContext) -> None:
    import nibabel as nib

    from bidsapp.core import grayordinates as go

    for hemi, img in go.to_gifti(_grayordinate_values(ctx), ctx.space.bm,
                                 intent="NIFTI_INTENT_TIME_SERIES").items():
        with ctx.writer.put(ctx.path("bold", ".func.gii", hemi=hemi)) as tmp:
            nib.save(img, str(tmp))


def _node_files(ctx: SinkContext) -> None:
    """Files the trial segmentation wrote (``trials.npy``, ``betas.tsv``, ...), each declared by a writer."""
    declared = {ending for w in WRITERS for ending in w.files}
    joined = getattr(ctx.inputs, "estimate_files", None) or {}  # the run's share of a joined trial model
    for key, src in sorted({**ctx.inputs.trial_files, **joined}.items()):
        ending = key.split("_")[0] + "".join(Path(src).suffixes)
        if ending not in declared:
            raise ValueError(f"{src}: no output writer declares '{ending}' (add it to bidsapp.outputs.writers).")
        suffix, ext = ending.split(".", 1)
        # the arrays (trials.npy, betas.npy: the large files) are read by nothing after this; the tables are, by
        # the sidecar (betas.tsv: the estimated trials), so they are copied
        ctx.writer.install(src, ctx.path(suffix, "." + ext), move=ctx.move and ext == "npy")


def _report_data(ctx: SinkContext) -> None:
    """What the participant report draws (carpet, DVARS, mean image), computed by the report node."""
    if getattr(ctx.inputs, "report_data", None):
        ctx.writer.install(ctx.inputs.report_data, ctx.path("reportdata", ".npz"), move=ctx.move)


def _descriptions(ctx: SinkContext) -> None:
    """The BIDS column descriptions (``.json``) of every table written so far."""
    from bidsapp.outputs import descriptions

    for entry in [e for e in ctx.writer.entries if descriptions.kind_of(e["Path"])]:
        with ctx.writer.put(ctx.path(descriptions.kind_of(entry["Path"]), ".json")) as tmp:
            descriptions.write_sidecar(ctx.writer.folder / entry["Path"], ctx.inputs.settings, dst=tmp,
                                       space=ctx.inputs.column_space)


def _relmat(ctx: SinkContext) -> None:
    """``--connectivity``: one ``_meas-<label>_relmat.tsv`` (and ``.json``) per measure, from the cleaned regions."""
    from bidsapp.outputs.connectomes import write_relmats

    if ctx.inputs.connectivity:
        write_relmats(ctx.writer, ctx.naming, ctx.output_dir, Path(ctx.cleaned), ctx.features,
                      measures=list(ctx.inputs.connectivity), fisher=ctx.inputs.fisher_z)


def warn_uneven_rows(ctx: SinkContext, writers: list[Writer]) -> None:
    """One warning when volumes censored inside the run make the rows of the image outputs (whose time axis has
    one step, the TR) unevenly spaced in time."""
    formats = [w.option for w in writers if w.series]
    if not formats:
        return
    info = json.loads(Path(ctx.inputs.clean_info).read_text())
    censored = set(info.get("CensoredVolumes", []))
    kept = sorted(set(range(info.get("KeptVolumes", 0) + len(censored))) - censored)
    inside = [v for v in censored if kept and kept[0] < v < kept[-1]]  # leading / trailing ones keep the step
    if inside:
        warnings.warn(f"{len(inside)} volume(s) censored inside the run: the rows of the {' / '.join(formats)} "
                      f"output(s) are the kept volumes, so their time axis (one step of {ctx.inputs.t_r:g} s) is not "
                      "their acquisition times; those are in _samples.tsv (onset of each kept row).", stacklevel=2)


def _read_npy(path: Path):
    import numpy as np

    return np.load(path, mmap_mode="r")


def _read_tsv_gz(path: Path):
    """The rows of a ``_timeseries.tsv.gz`` (header: column names, which may be any region name)."""
    import numpy as np
    import pandas as pd

    header = pd.read_csv(path, sep="\t", nrows=0).shape[1]
    return pd.read_csv(path, sep="\t", na_values=["n/a"], keep_default_na=False,
                       dtype=dict.fromkeys(range(header), np.float32), header=None, skiprows=1).to_numpy(np.float32)


# -- refusals and memory -----------------------------------------------------------------------------------
_VOLUME_RUN = "is for grayordinate runs (--space fsLR, fsaverage5, ...); this run is a volume"


def _volumes_only(space_cls: type, cifti: bool) -> str | None:
    return "makes no sense for grayordinates (use dtseries.nii or func.gii)" if space_cls.on_grayordinates else None


def _grayordinates_only(space_cls: type, cifti: bool) -> str | None:
    return None if space_cls.on_grayordinates else _VOLUME_RUN


def _gifti_only(space_cls: type, cifti: bool) -> str | None:
    if not space_cls.on_grayordinates:
        return _VOLUME_RUN
    return "makes no sense for grayordinates (a CIFTI run is written as dtseries.nii)" if cifti else None


def _streamed(grid_voxels: int, n_columns: int) -> int:
    return 3 * ROW_BLOCK_BYTES  # a block of rows, its text or image form, and the compressor's buffers


def _on_grayordinates(grid_voxels: int, n_columns: int) -> int:
    return 0  # counted with the run's grayordinates by the memory model's grid term


#: every kind of file of a run's outputs, in the order they are written (the sidecar comes last, from the sink)
WRITERS: tuple[Writer, ...] = (
    Writer("npy", ("timeseries.npy",), _npy, option="npy", help="the cleaned array, memory-mappable",
           bidsignore=("*_timeseries.npy",), read=_read_npy),
    Writer("features", ("features.tsv",), _install("features", "features", ".tsv"),
           bidsignore=("*_features.tsv", "*_features.json")),
    Writer("samples", ("samples.tsv",), _install("samples", "samples", ".tsv"),
           bidsignore=("*_samples.tsv", "*_samples.json")),
    Writer("mask", ("mask.nii.gz", "mask.dscalar.nii"), _mask, bidsignore=("*_desc-brain_mask.dscalar.nii",)),
    Writer("tsv.gz", ("timeseries.tsv.gz",), _tsv_gz, option="tsv.gz", help="TSV with column headers",
           memory=_streamed, read=_read_tsv_gz,
           always_for=lambda space_cls: bool(space_cls.image)),  # named regions: a small table, always written
    Writer("nii.gz", ("bold.nii.gz",), _nii_gz, option="nii.gz", help="cleaned 4D image",
           refuses=_volumes_only, memory=_streamed, series=True),
    Writer("dtseries.nii", ("bold.dtseries.nii",), _dtseries, option="dtseries.nii",
           help="grayordinate runs: CIFTI-2 dense time series", refuses=_grayordinates_only,
           memory=_on_grayordinates, series=True),
    Writer("func.gii", ("bold.func.gii",), _func_gii, option="func.gii",
           help="GIFTI runs: one time series per hemisphere", refuses=_gifti_only, memory=_on_grayordinates,
           series=True),
    Writer("columns image", ("dseg.nii.gz", "dseg.dlabel.nii", "probseg.nii.gz"), _columns_image),
    # --connectivity (BEP017 names, not yet in BIDS): region columns only (refused on voxels before the run), so its
    # few float64 matrices (48 MB at 1,000 regions) stay below the other writers' blocks: no memory term
    Writer("connectivity", ("relmat.tsv", "relmat.json"), _relmat, bidsignore=("*_relmat.tsv", "*_relmat.json")),
    Writer("trials", ("trials.npy", "trials.tsv", "betas.npy", "betas.tsv", "hrf.tsv", "betaquality.tsv"),
           _node_files,
           bidsignore=("*_trials.npy", "*_trials.tsv", "*_trials.json", "*_betas.npy", "*_betas.tsv",
                       "*_betas.json", "*_hrf.tsv", "*_hrf.json", "*_betaquality.tsv", "*_betaquality.json")),
    Writer("report data", ("reportdata.npz",), _report_data, bidsignore=("*_reportdata.npz",)),
    Writer("column descriptions", ("features.json", "samples.json", "trials.json", "betas.json", "hrf.json",
                                   "betaquality.json"),
           _descriptions),
)

#: ``--output-format`` values, in the order of :data:`WRITERS`
OUTPUT_FORMATS: tuple[str, ...] = tuple(w.option for w in WRITERS if w.option)

#: endings of the files holding a run's rows, in the order the loader prefers them
ROW_FILES: tuple[str, ...] = tuple(w.files[0] for w in WRITERS if w.read)


def read_rows(path: Path):
    """A run's rows from one of its :data:`ROW_FILES`."""
    return next(w for w in WRITERS if w.read and Path(path).name.endswith(w.files[0])).read(Path(path))


def get(name: str) -> Writer:
    """The writer named ``name`` (an ``--output-format`` value or an entry's name)."""
    for w in WRITERS:
        if name in (w.name, w.option):
            return w
    raise KeyError(f"no output writer named {name!r}; known: {', '.join(w.name for w in WRITERS)}")


def selected(formats: tuple[str, ...] | list[str], space_cls: type) -> list[Writer]:
    """The writers of one run, in writing order (``npy`` when no format is asked for)."""
    formats = tuple(formats) or ("npy",)
    return [w for w in WRITERS if w.wanted(formats, space_cls)]


def refusal(formats: tuple[str, ...] | list[str], space_cls: type, *, cifti: bool = False) -> str | None:
    """Why an asked ``--output-format`` value cannot be written for this column kind (one line), or None.

    ``cifti``: the run is one CIFTI-2 file (not a GIFTI pair)."""
    for fmt in formats:
        why = get(fmt).refuses(space_cls, cifti)
        if why:
            return f"--output-format {fmt} {why}"
    return None


def sink_memory(formats: tuple[str, ...] | list[str], space_cls: type | None, grid_voxels: int,
                n_columns: int) -> int:
    """Bytes the writers add to the derivatives node (they run one after the other: the largest counts)."""
    writers = selected(formats, space_cls) if space_cls is not None else [get(f) for f in formats or ("npy",)]
    return max((w.memory(grid_voxels, n_columns) for w in writers), default=0)


def format_help() -> str:
    """``--output-format`` help: each value and what it writes."""
    return "; ".join(f"{w.option}: {w.help}" for w in WRITERS if w.option)


def bidsignore() -> list[str]:
    """``.bidsignore`` patterns of the run outputs the BIDS validator does not know."""
    return [p for w in WRITERS for p in w.bidsignore]

"""One generation of a run's outputs: run locks, the reuse test and the writer.

The rules (README, "Reliability"):

- a run's outputs are written under its lock, so two invocations never interleave them;
- before any file of a run is replaced, every sidecar that lists it is removed; files are
  written under temporary names and renamed; the sidecar comes last and lists every output
  with its size and SHA-256. A run without its sidecar is incomplete and is recomputed;
- a run is reused only when its sidecar's configuration hash, bidsapp version, code fingerprint, input
  checksums and listed outputs (size and checksum) all match.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import shutil
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path

from bidsapp import __version__
from bidsapp.core.files import atomic_path, remove_temporaries, sha256sum, temporary_path, write_text
from bidsapp.errors import NameTaken
from bidsapp.outputs.checksums import ChecksumCache, carried_digest
from bidsapp.outputs.reader import listed_outputs, stem_of
from bidsapp.outputs.reader import read_sidecar as _read_sidecar

SIDECAR_GLOB = "*_timeseries.json"


def open_locked(path: Path, operation: int):
    """``path`` (created, with its folder, when missing) open and locked with ``flock(operation)``; None when
    ``operation`` has ``LOCK_NB`` and another process holds the lock.

    A lock taken on a file that was removed meanwhile (a refused invocation removes the output folder it created)
    would exclude nobody: the file's identity is checked once the lock is held, and the lock taken again on the
    file now at ``path``.
    """
    while True:
        path.parent.mkdir(parents=True, exist_ok=True)
        fh = open(path, "a")  # noqa: SIM115 - returned open, or closed here
        try:
            fcntl.flock(fh, operation)
        except BlockingIOError:
            fh.close()
            return None
        except BaseException:
            fh.close()
            raise
        try:
            if os.stat(path).st_ino == os.fstat(fh.fileno()).st_ino:
                return fh
        except FileNotFoundError:
            pass
        fh.close()


@contextlib.contextmanager
def run_lock(output_dir: Path, identity: str, *, wait: bool = True, holder: str | None = None) -> Iterator[bool]:
    """Exclusive lock on one run's outputs (``logs/locks/<identity>.lock``), held while writing.

    Yields True when the lock is held; with ``wait=False`` yields False at once when another process holds it.
    ``holder`` (who holds it, for a waiting invocation to say) is written into the file once the lock is held.
    """
    fh = open_locked(Path(output_dir) / "logs" / "locks" / f"{identity}.lock",
                     fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
    if fh is None:
        yield False
        return
    with fh:
        if holder is not None:
            fh.truncate(0)
            fh.write(holder)
            fh.flush()
        try:
            yield True
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


@contextlib.contextmanager
def name_claim(output_dir: Path, variant: str, configuration: dict, *, replace: bool = False) -> Iterator[None]:
    """One meaning per output name, also between invocations that run at once.

    The first run written under an output variant (``space-MNI_desc-simple``: the entities that do not name
    the run) records its configuration (:func:`configuration_of`) in ``logs/names/<variant>.json``. A run
    of the same variant made with other settings is refused (``NameTaken``) while a run written under the
    recorded configuration still exists; with ``replace`` (``--replace-outputs``) it takes the name over.
    Held while the run's files are written, so two writers of one variant never interleave their checks.
    """
    folder = Path(output_dir) / "logs"
    path = folder / "names" / f"{variant}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    (folder / "locks").mkdir(parents=True, exist_ok=True)
    with open_locked(folder / "locks" / f"name-{variant}.lock", fcntl.LOCK_EX) as fh:
        try:
            claim = (_read_sidecar(path) or {}).get("Configuration")
            diff = differing_parameters(claim, configuration) if isinstance(claim, dict) else {}
            if diff and not replace:
                holder = _written_under(Path(output_dir), variant, claim)
                if holder is not None:
                    raise NameTaken(
                        f"{holder}: outputs named {variant} in this folder were made with other settings: "
                        f"{describe_differences(diff)}; one output folder keeps one meaning per name: write to "
                        "another output folder, or name this variant with --desc LABEL, or pass "
                        "--replace-outputs to redo or invalidate every run of that name.")
            if claim != configuration:
                write_text(path, json.dumps({"Variant": variant, "Configuration": configuration}, indent=2) + "\n")
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _written_under(output_dir: Path, variant: str, configuration: dict) -> Path | None:
    """A sidecar of ``variant`` written under ``configuration``, or None (the record is stale)."""
    from bidsapp.bids.naming import variant_of

    for sidecar in sorted(output_dir.glob(f"sub-*/**/func/*{SIDECAR_GLOB[1:]}")):
        if variant_of(stem_of(sidecar)) != variant:
            continue
        meta = _read_sidecar(sidecar)
        if meta is not None and not differing_parameters(configuration_of(meta), configuration):
            return sidecar
    return None


def clear_temporaries(output_dir: Path, naming) -> None:
    """Remove what killed writers left of a run (only when no other process is writing it)."""
    with run_lock(output_dir, naming.identity, wait=False) as held:
        if held:
            remove_temporaries(naming.sidecar(output_dir).parent, naming.owns)


def reuse_status(
    sidecar: Path,
    *,
    configuration_hash: str,
    current_sources: Callable[[], list[dict]],
    cache: ChecksumCache,
    version: str = __version__,
    code: str | None = None,
) -> str | None:
    """Why a run must be recomputed, or ``None`` when its outputs can be reused.

    Parameters
    ----------
    sidecar : Path
        The run's ``_timeseries.json``.
    configuration_hash : str
        Hash of the settings that change the numbers.
    current_sources : callable
        Returns the run's ``Sources`` entries (Role, URI, SHA256) as they are now; called
        last, only when everything else matches, since it may read the inputs.
    cache : ChecksumCache
        Checksums of unchanged files are not read again.
    version : str
        The running bidsapp version.
    code : str, optional
        The running code's fingerprint (default :func:`bidsapp.outputs.provenance.code_fingerprint`): outputs
        computed by other code (an edited checkout, other numpy / scipy versions) are not reused.
    """
    sidecar = Path(sidecar)
    if not sidecar.exists():
        return "no complete previous outputs"
    meta = _read_sidecar(sidecar)
    if meta is None:
        return f"previous sidecar {sidecar.name} is unreadable"
    if meta.get("ConfigurationHash") != configuration_hash:
        return f"settings changed (ConfigurationHash {meta.get('ConfigurationHash')} -> {configuration_hash})"
    made_by = (meta.get("SoftwareVersions") or {}).get("bidsapp")
    if made_by != version:
        return f"made by bidsapp {made_by}, this is {version}"
    if code is None:
        from bidsapp.outputs.provenance import code_fingerprint

        code = code_fingerprint()
    if meta.get("CodeFingerprint") != code:
        return ("made by other code (bidsapp's code, or its Python, numpy, scipy, nibabel, nipype or isal "
                "versions, differ)")
    listed = meta.get("OutputFiles")
    if not isinstance(listed, list) or not all(isinstance(f, dict) and "SHA256" in f for f in listed):
        return "previous sidecar lists no output checksums"
    for entry in listed:
        path = sidecar.parent / entry.get("Path", "")
        if not path.is_file():
            return f"output {entry.get('Path')} is missing"
        if path.stat().st_size != entry.get("Size") or cache.sha256(path) != entry["SHA256"]:
            return f"output {entry['Path']} changed since it was written"
    before = {s.get("Role"): (s.get("URI"), s.get("SHA256")) for s in meta.get("Sources") or []}
    now = {s["Role"]: (s["URI"], s["SHA256"]) for s in current_sources()}
    for role in sorted(set(before) | set(now)):
        if role not in now:
            return f"input '{role}' is no longer used"
        if role not in before:
            return f"input '{role}' ({now[role][0]}) is new"
        if before[role][0] != now[role][0]:
            return f"input '{role}' is now {now[role][0]} (was {before[role][0]})"
        if before[role][1] != now[role][1]:
            return f"input '{role}' ({now[role][0]}) changed (sha256 differs)"
    return None


#: entities a writer adds after a run's stem (``<stem>_meas-<measure>_relmat.tsv``); any other entity there
#: names another output set (``<stem>_desc-x_timeseries.npy`` when the stem has no ``desc-``)
SET_ENTITIES = ("meas",)


def belongs_to_set(name: str, stem: str) -> bool:
    """Whether file ``name`` is one of output set ``stem``'s files: ``<stem>_<suffix>.<ext>`` or
    ``<stem>_<entity>-<value>_<suffix>.<ext>`` with an entity of :data:`SET_ENTITIES`."""
    if not name.startswith(stem + "_"):
        return False
    *entities, suffix = name[len(stem) + 1:].split(".")[0].split("_")
    return suffix.isalnum() and all(e.partition("-")[0] in SET_ENTITIES and e.partition("-")[2] for e in entities)


class RunWriter:
    """Write one generation of a run's outputs into ``folder`` (hold the run's lock).

    Call :meth:`begin`, then :meth:`put` for every file, then :meth:`finish` with the sidecar.
    A file whose content is unchanged is left in place (and no other sidecar is touched);
    before a file is replaced, every sidecar in the folder that lists it is removed.
    """

    def __init__(self, sidecar: Path, cache: ChecksumCache):
        self.sidecar = Path(sidecar)
        self.folder = self.sidecar.parent
        self.cache = cache
        self.entries: list[dict] = []
        self._listings: dict[Path, set | None] | None = None  # other sidecars -> names they list, read once
        self.moved: list[tuple[Path, Path]] = []  # (work file, output) moved by install

    def begin(self) -> None:
        """Invalidate the previous generation: its sidecar goes before any of its files change."""
        self.folder.mkdir(parents=True, exist_ok=True)
        self.sidecar.unlink(missing_ok=True)

    def _invalidate_listing(self, name: str) -> None:
        if self._listings is None:  # only sidecars of this run (same lock) can list its files
            self._listings = {}
            for other in self.folder.glob(SIDECAR_GLOB):
                meta = _read_sidecar(other)
                self._listings[other] = None if meta is None else set(listed_outputs(meta))
        for other, listed in list(self._listings.items()):
            if listed is None or name in listed:
                del self._listings[other]
                other.unlink(missing_ok=True)
                if other != self.sidecar:
                    warnings.warn(f"{self.folder / name} changed, so the outputs described by {other.name} are "
                                  "now incomplete (their sidecar was removed); rerun with their settings to "
                                  "restore them.", stacklevel=2)

    def _remove_unlisted(self) -> None:
        """Remove this output set's files that the new generation does not list (see :func:`belongs_to_set`)."""
        stem = stem_of(self.sidecar)
        keep = {e["Path"] for e in self.entries} | {self.sidecar.name}
        for path in self.folder.glob(f"{stem}_*"):
            if path.name not in keep and belongs_to_set(path.name, stem) and path.is_file():
                path.unlink()

    @contextlib.contextmanager
    def put(self, path: Path) -> Iterator[Path]:
        """Yield a temporary path to write ``path``'s new content into; then install it."""
        path, tmp = self._staged(path)
        try:
            yield tmp
            if not self._commit(tmp, path, sha256sum(tmp)):
                tmp.unlink()  # same content: the installed file (and sidecars listing it) stay valid
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise

    def _staged(self, path: Path) -> tuple[Path, Path]:
        """``path`` checked to be in this run's folder, and a new empty temporary file next to it."""
        path = Path(path)
        if path.parent != self.folder:
            raise ValueError(f"{path}: outputs of a run must be in {self.folder}.")
        return path, temporary_path(path)

    def _commit(self, tmp: Path, path: Path, digest: str) -> bool:
        """Install the finished temporary ``tmp`` (whose SHA-256 is ``digest``) as ``path`` and list it; returns
        False when ``path`` already held that content (``tmp`` is then left for the caller to remove)."""
        same = path.is_file() and self.cache.sha256(path) == digest
        if not same:
            self._invalidate_listing(path.name)
            os.replace(tmp, path)
            self.cache.record(path, digest)
        self.entries.append({"Path": path.name, "Size": path.stat().st_size, "SHA256": digest})
        return not same

    def install(self, src: str | os.PathLike, path: Path, *, move: bool = False,
                written: dict | None = None) -> Path:
        """Install a finished file of the work folder as ``path``, a file of its own, never a hard link.

        With ``move`` (the sink's ``move_work_files``: the work folder is this invocation's private one, removed
        after the run, and nothing reads ``src`` after the sink) the file is renamed into place (no data
        written or read again); otherwise, or when the rename fails (``EXDEV``: the work folder is on another
        filesystem), it is copied: a reflink where the filesystem shares blocks copy-on-write, otherwise a
        copy made by the kernel. A moved file's SHA-256 is the one its node computed while writing it
        (``written``, :func:`~bidsapp.outputs.checksums.written_digest`) when
        :func:`~bidsapp.outputs.checksums.carried_digest` shows that the moved file is the very file hashed,
        unchanged since; a copy, or a moved file that cannot be shown so, is hashed as installed.

        Returns where ``src``'s content is now: ``path`` when moved, else ``src``. When ``path`` already held
        that content, the moved file goes back to ``src``; a failure puts it back too (and :meth:`give_back`
        returns the moved files of a run whose outputs were not finished), so the work folder a failed
        invocation keeps still holds every node's files.

        A hard link made the output and the work folder's cache one file: an output edited in place (a
        memory map opened ``r+``) changed the cache, which a later invocation then installed again, checksums
        and all, into any output folder sharing the ``--work-dir``.
        """
        path, tmp = self._staged(path)
        moved = False
        try:
            before = os.stat(src) if move else None
            moved = move and _rename(src, tmp)
            if not moved:
                tmp.unlink()
                copy_file(src, tmp)
            digest = (carried_digest(written, before, os.stat(tmp)) if moved else None) or sha256sum(tmp)
            installed = self._commit(tmp, path, digest)
        except BaseException:
            if moved and tmp.exists():
                os.rename(tmp, src)
            tmp.unlink(missing_ok=True)
            raise
        if not installed:  # the output already held this content: the work file stays in the work folder
            if moved:
                os.rename(tmp, src)
            else:
                tmp.unlink()
            return Path(src)
        if moved:
            self.moved.append((Path(src), path))
            return path
        return Path(src)

    def give_back(self) -> None:
        """Copy the files :meth:`install` moved out of the work folder back into it, for a run whose outputs
        were not finished (its sidecar never written): the work folder a failed invocation keeps then holds
        every node's files again, and a later ``--work-dir`` naming it resumes from them. The outputs stay
        as they are (incomplete: no sidecar lists them, so they are recomputed)."""
        while self.moved:
            src, path = self.moved.pop()
            if path.is_file() and not os.path.lexists(src):
                with contextlib.suppress(OSError):
                    with atomic_path(src) as tmp:
                        tmp.unlink()
                        copy_file(path, tmp)

    def finish(self, sidecar: dict) -> Path:
        """Write the sidecar last, listing every output with its size and SHA-256."""
        sidecar = dict(sidecar, OutputFiles=self.entries)
        self._remove_unlisted()
        write_text(self.sidecar, json.dumps(sidecar, indent=2, default=str) + "\n")
        return self.sidecar


def _rename(src: str | os.PathLike, dst: Path) -> bool:
    """Rename ``src`` over ``dst``; False (nothing moved) when it cannot: ``EXDEV`` (another filesystem, the
    usual case of a container whose work folder and outputs are different mounts) or any other refusal."""
    try:
        os.rename(src, dst)
    except OSError:
        return False
    return True


def copy_file(src: str | os.PathLike, dst: str | os.PathLike) -> None:
    """Copy ``src`` to the new file ``dst``: a reflink (``FICLONE``: no data copied, blocks shared
    copy-on-write, on btrfs, XFS, ...) when the filesystem allows, otherwise :func:`shutil.copyfile` (the
    kernel copies, ``sendfile``); either way ``dst`` is another file, which writes to ``src`` never change."""
    ficlone = 0x40049409  # linux/fs.h FICLONE
    with open(src, "rb") as fin, open(dst, "wb") as fout:
        try:
            fcntl.ioctl(fout.fileno(), ficlone, fin.fileno())
            return
        except OSError:
            pass
    shutil.copyfile(src, dst)


#: parameters that change how outputs are written, not their numbers (ignored when configurations are compared)
LAYOUT_PARAMETERS = ("output_format",)


def file_parameter(role: str) -> str | None:
    """The input-file option (options table ``input_file``) a ``Sources`` role belongs to, or None:
    ``atlas`` and ``atlas_right`` -> ``atlas``; ``roi_masks_2`` -> ``roi_masks``. Such parameters are
    compared by their files' checksums, not by their paths."""
    from bidsapp.options import INPUT_FILES

    for name in INPUT_FILES:
        if role in (name, f"{name}_right") or re.fullmatch(rf"{name}_\d+", role):
            return name
    return None


def configuration_of(meta: dict) -> dict:
    """The parameters of a run's sidecar that change its numbers, input files as their checksums.

    The atlas is identified by the SHA-256 of its file(s), so two atlas files under one
    ``--atlas-name`` differ, and one atlas moved to another path does not.
    """
    params = {k: v for k, v in (meta.get("Parameters") or {}).items() if k not in LAYOUT_PARAMETERS}
    if not params:
        return {"ConfigurationHash": meta.get("ConfigurationHash")}
    files: dict[str, list[str]] = {}
    for source in meta.get("Sources") or []:
        key = file_parameter(str(source.get("Role"))) if isinstance(source, dict) else None
        if key:
            files.setdefault(key, []).append(str(source.get("SHA256"))[:16])
    for key, checksums in files.items():
        if params.get(key):
            params[key] = "sha256:" + "+".join(checksums)
    return json.loads(json.dumps(params, sort_keys=True, default=str))


def differing_parameters(a: dict, b: dict) -> dict[str, tuple]:
    """Parameters (of :func:`configuration_of`) whose values differ: ``{name: (value in a, value in b)}``.

    Only parameters both configurations name are compared (a newer version may record more). When they
    name none in common (one sidecar records only its ``ConfigurationHash``, or nothing), the settings
    cannot be compared, and that is a difference (``Parameters``), never a silent match.
    """
    shared = set(a) & set(b)
    if not shared and a != b:
        def recorded(c: dict) -> str:
            return "recorded" if "ConfigurationHash" not in c else "not recorded"
        return {"Parameters": (recorded(a), recorded(b))}
    return {k: (a[k], b[k]) for k in sorted(shared) if a[k] != b[k]}


def describe_differences(diff: dict[str, tuple], first: str = "there", second: str = "now") -> str:
    """``standardize ('zscore_sample' there, 'psc' now); ...`` (one line)."""
    return "; ".join(f"{k} ({a!r} {first}, {b!r} {second})" for k, (a, b) in diff.items())

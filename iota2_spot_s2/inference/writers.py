"""Map outputs: class map, confidence and probabilities written window by window, then COGs.

Files (``<prefix>`` defaults to ``map``), all on the input's grid:

- ``<prefix>_classes.tif``: uint8 class **codes** (uint16 if a code exceeds 255), nodata 0, colour
  table from the nomenclature (plus ``<prefix>_classes.qml`` for QGIS).
- ``<prefix>_confidence.tif``: uint8, ``round(100 * max probability)`` in 0..100 (like OSO's
  confidence); **nodata 255** (0 would be a legal value).
- ``<prefix>_proba.tif`` (optional): uint16 ``round(1000 * p)``, one band per class in increasing
  code order like iota2's ``PROBAMAP``; band descriptions ``"<code> <name>"`` and band tags
  ``code``/``name``; **nodata 65535**. Rounding makes each pixel sum to 1000 within ±K/2. A COG
  without overviews (read by programs; building them was most of a map's COG conversion).

Each file is first written as a hidden tiled, uncompressed GeoTIFF (reopened at every
checkpoint, below, where GDAL would forget a compression level) in the output folder, named
``.<name>.<fingerprint[:12]>.partial`` — no ``.tif`` suffix, so that no ``*.tif`` search (iota2's
``FileSearch_AND`` included) ever takes it — then converted to a COG under its final name
(atomic rename). The folder never holds a half-written file under a final name.

Resuming: every final file carries a ``IOTA2_SPOT_S2_FINGERPRINT`` tag, a hash of the model
weights, class codes, normalisation, input identity (file path/size/mtime or array content),
mask, nomenclature and mode. A rerun keeps finished files whose fingerprint and grid match and
recomputes the others. Inside a pass, progress is kept **per tile**: every ~5 % of the tiles (or
minute) the partial files are closed — GDAL then writes them completely — and the tiles done so
far are appended to a journal ``.<name>.<fingerprint[:12]>.journal`` (fsync'd), then the files
are reopened. A killed run (even ``kill -9``) resumes from its last journal entry, and the
result equals an uninterrupted run. The journal names each core by its whole rectangle
``(row, col, height, width)``: a rerun with another tile size recomputes every tile that is not
exactly one already written (the map does not depend on the tile size, so overwriting is safe),
instead of skipping a larger tile whose corner matches a smaller old one. Partial files and
journals of another fingerprint (an earlier, different run) are removed when a new pass starts;
a pass that fails before its first journal entry removes its own.

Parts (distributed runs, :mod:`~iota2_spot_s2.inference.distributed`): a tile task on a worker
writes its encoded core to ``.<name>.<fingerprint[:12]>.parts/<row>_<col>_<h>x<w>.npz``
(atomic rename, so a part that exists is complete); the writer copies it into the partial files
(:meth:`MapWriter.take_part`) and deletes it once the tile is in the journal. A resumed pass
(distributed or not) takes the parts left by a killed one before computing anything.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import rasterio
import torch
from rasterio.windows import Window

from iota2_spot_s2.errors import InputError
from iota2_spot_s2.grid import Grid
from iota2_spot_s2.inference.tiling import PixelWindow
from iota2_spot_s2.io import WRITE_CACHE_MB, finalize_cog, open_tiled_gtiff, tiled_bytes
from iota2_spot_s2.nomenclature import Nomenclature

FINGERPRINT_TAG = "IOTA2_SPOT_S2_FINGERPRINT"
CONFIDENCE_NODATA = 255
PROBA_NODATA = 65535
PROBA_SCALE = 1000
#: Smallest room an output file takes (GeoTIFF header, tags, colour table, one block) and the
#: best compression assumed, for the room check before writing (a lower bound, never a promise).
MIN_FILE_BYTES = 4096
BEST_COMPRESSION = 1000
KINDS = ("classes", "confidence", "proba")


@dataclass(frozen=True)
class OutputFile:
    """One output raster's layout."""

    kind: str
    path: Path
    count: int
    dtype: str
    nodata: int | float | None


def class_dtype(codes: Sequence[int]) -> str:
    """uint8 when every code fits, else uint16."""
    return "uint8" if max(codes) <= 255 else "uint16"


def output_files(out_dir: Path, prefix: str, codes: Sequence[int], proba: bool) -> list[OutputFile]:
    """The rasters a map run produces."""
    files = [
        OutputFile("classes", out_dir / f"{prefix}_classes.tif", 1, class_dtype(codes), 0),
        OutputFile(
            "confidence", out_dir / f"{prefix}_confidence.tif", 1, "uint8", CONFIDENCE_NODATA
        ),
    ]
    if proba:
        files.append(
            OutputFile("proba", out_dir / f"{prefix}_proba.tif", len(codes), "uint16", PROBA_NODATA)
        )
    return files


def check_room(
    specs: Sequence[OutputFile], grid: Grid, written: Sequence[Path] | None = None
) -> None:
    """Refuse before writing when the disks or the file-size limit cannot hold the maps.

    The partial files are uncompressed (see :func:`~iota2_spot_s2.io.open_tiled_gtiff`): each
    needs its blocks' size plus a header; the COG beside it a lower bound (:data:`MIN_FILE_BYTES`,
    or the raw size over :data:`BEST_COMPRESSION`), summed per filesystem (outputs may sit in
    several folders). A full disk or a ``ulimit -f`` too small is said in one line naming the
    folder, instead of GDAL failing halfway (libtiff prints its own complaint on the process's
    stderr, beyond our reach). ``written``: the partial files a resumed pass reopens, in the
    order of ``specs``; the disk already given to them (sparse files) is not asked for again.

    Raises:
        InputError: Naming the output folder, the room needed and the room there is.
    """
    import resource

    partial = {s.kind: tiled_bytes(grid.height, grid.width, s.count, s.dtype) + MIN_FILE_BYTES
               for s in specs}  # fmt: skip
    largest = max(specs, key=lambda s: partial[s.kind])
    limit = resource.getrlimit(resource.RLIMIT_FSIZE)[0]
    if limit != resource.RLIM_INFINITY and limit < partial[largest.kind]:
        raise InputError(largest.path.parent, f"the file-size limit (ulimit -f) is {limit} "
                         f"bytes; the maps need files of at least {partial[largest.kind]} "
                         "bytes while they are written")  # fmt: skip
    need: dict[int, list] = {}  # filesystem -> [a folder on it, bytes]
    for k, spec in enumerate(specs):
        raw = grid.height * grid.width * spec.count * np.dtype(spec.dtype).itemsize
        held = os.stat(written[k]).st_blocks * 512 if written else 0
        entry = need.setdefault(os.stat(spec.path.parent).st_dev, [spec.path.parent, 0])
        entry[1] += max(0, partial[spec.kind] - held) + max(MIN_FILE_BYTES, raw // BEST_COMPRESSION)
    for folder, total in need.values():
        stats = os.statvfs(folder)
        free = stats.f_bavail * stats.f_frsize
        if free < total:
            raise InputError(folder, f"the disk is full: {free} bytes free, the maps need at "
                             f"least {total} while they are written")  # fmt: skip


def is_complete(spec: OutputFile, grid: Grid, fingerprint: str) -> bool:
    """True if ``spec.path`` is a finished output of the same run on the same grid."""
    if not spec.path.is_file():
        return False
    try:
        with rasterio.open(spec.path) as src:
            same_grid = (src.crs, src.transform, src.width, src.height) == (
                grid.crs,
                grid.transform,
                grid.width,
                grid.height,
            )
            layout = (src.count, src.dtypes[0]) == (spec.count, spec.dtype)
            return same_grid and layout and src.tags().get(FINGERPRINT_TAG) == fingerprint
    except rasterio.RasterioIOError:
        return False


def encode(
    proba: np.ndarray, invalid: np.ndarray, codes: np.ndarray, kinds: Sequence[str] = KINDS
) -> dict[str, np.ndarray]:
    """Turn float probabilities ``(K, h, w)`` into the output arrays named in ``kinds``.

    The best class and its probability come from one ``torch.max`` over the classes (first
    maximum on ties, like ``numpy.argmax``; twice as fast on a 1 Mpx tile); the scaled
    probabilities are only computed when written.
    """
    top, best = torch.from_numpy(np.ascontiguousarray(proba)).max(dim=0)
    out = {}
    if "classes" in kinds:
        classes = codes[best.numpy()]
        classes[invalid] = 0
        out["classes"] = classes[None]
    if "confidence" in kinds:
        confidence = np.rint(top.numpy() * 100).astype(np.uint8)
        confidence[invalid] = CONFIDENCE_NODATA
        out["confidence"] = confidence[None]
    if "proba" in kinds:
        scaled = np.rint(proba * PROBA_SCALE).astype(np.uint16)
        scaled[:, invalid] = PROBA_NODATA
        out["proba"] = scaled
    return out


class MapWriter:
    """Writes the pending outputs window by window; finalises them as COGs on success.

    Args:
        specs: Outputs to write (the ones not already complete).
        grid: Output grid (the input's).
        codes: Class codes in logit order (increasing).
        nomenclature: For the colour table and band names (optional).
        tags: Dataset tags written in every file (includes the fingerprint, which names the
            partial files and the journal).
        n_tiles: Tiles of the whole pass, to space the journal checkpoints (~5 % of them).
        keep_on_failure: Keep the partial files, journal and parts when the session fails after
            its first journal entry, to resume (default); False removes everything.

    Attributes:
        done: :func:`core_key` of the tile cores already written by an interrupted earlier pass
            (skip them); filled by :meth:`session`.
        seconds_before: Compute time of those earlier passes.

    """

    def __init__(
        self,
        specs: Sequence[OutputFile],
        grid: Grid,
        codes: Sequence[int],
        nomenclature: Nomenclature | None,
        tags: dict[str, str],
        n_tiles: int = 0,
        keep_on_failure: bool = True,
    ) -> None:
        self.specs = list(specs)
        self.keep_on_failure = keep_on_failure
        self.grid = grid
        self.codes = np.asarray(codes)
        self.nomenclature = nomenclature
        self.tags = tags
        self.key = tags.get(FINGERPRINT_TAG, "")[:12] or os.urandom(6).hex()
        self.every = max(1, n_tiles // 20) if n_tiles else 1 << 62  # else: by time only
        self.done: set[tuple[int, int, int, int]] = set()
        self.seconds_before = 0.0
        self._new: list[tuple[int, int, int, int]] = []
        self._taken: list[Path] = []
        self._since = time.monotonic()
        self._open: dict[str, tuple[OutputFile, Path, rasterio.io.DatasetWriter]] = {}

    @property
    def journal(self) -> Path:
        """The journal of this pass (beside the first output)."""
        first = self.specs[0].path
        return first.with_name(f".{first.stem}.{self.key}.journal")

    @property
    def parts(self) -> Path:
        """The folder of per-tile parts written by distributed tasks (see the module docstring)."""
        first = self.specs[0].path
        return first.with_name(f".{first.stem}.{self.key}.parts")

    @property
    def kinds(self) -> list[str]:
        """The outputs this writer writes (the parts hold these arrays)."""
        return [spec.kind for spec in self.specs]

    def partial(self, spec: OutputFile) -> Path:
        """The hidden partial file of one output."""
        return spec.path.with_name(f".{spec.path.stem}.{self.key}.partial")

    @contextlib.contextmanager
    def session(self) -> Iterator[MapWriter]:
        """Open (or reopen, to resume) the partial files; on success convert them to COGs.

        GDAL's block cache is capped at :data:`WRITE_CACHE_MB` meanwhile: its default (5 % of
        RAM) grows with the output size and made peak memory depend on the scene size.
        """
        with rasterio.Env(GDAL_CACHEMAX=WRITE_CACHE_MB):
            yield from self._session()

    def _session(self) -> Iterator[MapWriter]:
        finished = False
        try:
            if self._resume():
                check_room(self.specs, self.grid, [self.partial(s) for s in self.specs])
            else:
                for folder in sorted({spec.path.parent for spec in self.specs}):
                    folder.mkdir(parents=True, exist_ok=True)  # outputs may name other folders
                self._remove_stale()
                check_room(self.specs, self.grid)
                for spec in self.specs:
                    tmp = self.partial(spec)
                    self._open[spec.kind] = (spec, tmp, self._create(spec, tmp))
                self._append({"kinds": [spec.kind for spec in self.specs]})
            yield self
            self._close()
            for spec, tmp, _ in self._open.values():
                proba = spec.kind == "proba"  # uint16 0-1000 in every writer
                finalize_cog(tmp, spec.path, overviews=not proba, predictor=proba)
            finished = True
        finally:
            self._close()
            if finished or not self.done or not self.keep_on_failure:  # nothing to resume
                for _, tmp, _ in self._open.values():
                    tmp.unlink(missing_ok=True)
                self.journal.unlink(missing_ok=True)
                shutil.rmtree(self.parts, ignore_errors=True)
            self._open.clear()

    def _resume(self) -> bool:
        """Reopen the partial files of an interrupted pass of the same fingerprint."""
        if not self.journal.is_file() or not all(self.partial(s).is_file() for s in self.specs):
            return False
        lines = [json.loads(x) for x in self.journal.read_text().splitlines() if x.strip()]
        if not lines or lines[0].get("kinds") != [spec.kind for spec in self.specs]:
            return False
        entries = lines[1:]
        if any(len(t) != 4 for entry in entries for t in entry["tiles"]):
            return False  # an older journal (corners only): sizes unknown, start afresh
        try:
            for spec in self.specs:
                tmp = self.partial(spec)
                self._open[spec.kind] = (spec, tmp, rasterio.open(tmp, "r+"))
        except rasterio.RasterioIOError:
            self._close()
            self._open.clear()
            return False
        for entry in entries:
            self.done.update(tuple(int(v) for v in t) for t in entry["tiles"])  # type: ignore[misc]
            self.seconds_before += float(entry.get("seconds", 0.0))
        return True

    def _remove_stale(self) -> None:
        """Partial files and journals of our outputs left by other (earlier) passes."""
        for spec in self.specs:
            for old in spec.path.parent.glob(f".{spec.path.stem}.*.partial*"):
                old.unlink(missing_ok=True)
            for old in spec.path.parent.glob(f".{spec.path.stem}.*.journal"):
                old.unlink(missing_ok=True)
            for old in spec.path.parent.glob(f".{spec.path.stem}.*.parts"):
                shutil.rmtree(old, ignore_errors=True)

    def checkpoint(self, force: bool = False) -> None:
        """Close the files (GDAL completes them), journal the new tiles, reopen the files."""
        due = len(self._new) >= self.every or time.monotonic() - self._since > 60.0
        if not self._new or not (due or force):
            return
        self._close()
        seconds = time.monotonic() - self._since
        self._append({"tiles": self._new, "seconds": round(seconds, 3)})
        self.done.update(self._new)
        for part in self._taken:  # journaled: the part is no longer needed to resume
            part.unlink(missing_ok=True)
        self._taken.clear()
        # seconds_before holds earlier passes only: the caller times this pass itself
        self._new, self._since = [], time.monotonic()
        for kind, (spec, tmp, _) in list(self._open.items()):
            self._open[kind] = (spec, tmp, rasterio.open(tmp, "r+"))

    def _append(self, entry: dict[str, object]) -> None:
        with open(self.journal, "a", encoding="utf-8") as f:
            f.write(json.dumps(entry) + "\n")
            f.flush()
            os.fsync(f.fileno())

    def write(self, core: PixelWindow, proba: np.ndarray, invalid: np.ndarray) -> None:
        """Write one tile core."""
        if self._open:
            self.write_encoded(core, encode(proba, invalid, self.codes, self.kinds))

    def take_part(self, core: PixelWindow) -> bool:
        """Write a tile core from its part file if one exists (the part goes once journaled)."""
        path = part_path(self.parts, core)
        if not self._open or not path.is_file():
            return False
        with np.load(path) as part:
            arrays = {kind: part[kind] for kind in self.kinds}
        self._taken.append(path)
        self.write_encoded(core, arrays)
        return True

    def write_encoded(self, core: PixelWindow, arrays: dict[str, np.ndarray]) -> None:
        """Write one tile core already encoded (:func:`encode`)."""
        window = Window(core.col, core.row, core.width, core.height)
        for kind, (spec, _, dst) in self._open.items():
            dst.write(arrays[kind].astype(spec.dtype, copy=False), window=window)
        self._new.append(core_key(core))
        self.checkpoint()

    def set_timing(self, seconds: float, pixels_per_second: float) -> None:
        """Record the run's speed in every file (returned again when a rerun resumes)."""
        for _, _, dst in self._open.values():
            dst.update_tags(SECONDS=f"{seconds:.3f}", PIXELS_PER_SECOND=f"{pixels_per_second:.1f}")

    def _create(self, spec: OutputFile, tmp: Path) -> rasterio.io.DatasetWriter:
        dst = open_tiled_gtiff(tmp, self.grid, spec.count, spec.dtype, reopened=True,
                               nodata=spec.nodata)  # fmt: skip
        try:
            dst.update_tags(**self.tags)
            self._describe(dst, spec)
        except Exception:
            dst.close()
            raise
        return dst

    def _describe(self, dst: rasterio.io.DatasetWriter, spec: OutputFile) -> None:
        """Colour table and band descriptions of one output (a subclass may describe others)."""
        if spec.kind == "classes" and self.nomenclature is not None:
            dst.write_colormap(1, self.nomenclature.color_table())
        if spec.kind == "proba":
            self._describe_bands(dst)
        if spec.kind == "confidence":
            dst.set_band_description(1, "confidence (100 x max probability)")
        if spec.kind == "classes":
            dst.set_band_description(1, "class code")

    def _describe_bands(self, dst: rasterio.io.DatasetWriter) -> None:
        nom = self.nomenclature
        for band, code in enumerate(self.codes.tolist(), start=1):
            name = nom.name_of(code) if nom is not None and code in nom.codes else ""
            dst.set_band_description(band, f"{code} {name}".strip())
            dst.update_tags(band, code=str(code), name=name)

    def _close(self) -> None:
        for _, _, dst in self._open.values():
            if not dst.closed:
                dst.close()


def core_key(core: PixelWindow) -> tuple[int, int, int, int]:
    """How the journal names a core: its whole rectangle, so another tiling never matches."""
    return (core.row, core.col, core.height, core.width)


def part_path(parts: Path, core: PixelWindow) -> Path:
    """The part file of one tile core."""
    return parts / f"{core.row}_{core.col}_{core.height}x{core.width}.npz"


def save_part(parts: Path, core: PixelWindow, arrays: dict[str, np.ndarray]) -> Path:
    """Write one tile's encoded arrays atomically (a part that exists is complete)."""
    final = part_path(parts, core)
    tmp = final.with_name(f".{final.stem}.{uuid.uuid4().hex}.tmp")
    try:
        with open(tmp, "wb") as f:
            np.savez(f, **arrays)  # type: ignore[arg-type]  # (stubs: a key could be allow_pickle)
        os.replace(tmp, final)
    finally:
        tmp.unlink(missing_ok=True)
    return final


def read_timing(path: Path) -> tuple[float, float]:
    """``(seconds, pixels_per_second)`` recorded in a finished output (0 if absent)."""
    with rasterio.open(path) as src:
        tags = src.tags()
    return float(tags.get("SECONDS", 0.0)), float(tags.get("PIXELS_PER_SECOND", 0.0))

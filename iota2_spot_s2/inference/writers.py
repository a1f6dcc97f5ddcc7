"""Map outputs: class map, confidence and probabilities written window by window, then COGs.

Files (``<prefix>`` defaults to ``map``), all on the input's grid:

- ``<prefix>_classes.tif``: uint8 class **codes** (uint16 if a code exceeds 255), nodata 0, colour
  table from the nomenclature (plus ``<prefix>_classes.qml`` for QGIS).
- ``<prefix>_confidence.tif``: uint8, ``round(100 * max probability)`` in 0..100 (like OSO's
  confidence); **nodata 255** (0 would be a legal value).
- ``<prefix>_proba.tif`` (optional): uint16 ``round(1000 * p)``, one band per class in increasing
  code order like iota2's ``PROBAMAP``; band descriptions ``"<code> <name>"`` and band tags
  ``code``/``name``; **nodata 65535**. Rounding makes each pixel sum to 1000 within ±K/2.

Each file is first written as a hidden tiled GeoTIFF (``.<name>.<random>.partial.tif``) in the
output folder, then converted to a COG under its final name (atomic rename). If anything fails,
the partial files are deleted: the folder never holds half-written maps.

Resuming: every final file carries a ``IOTA2_SPOT_S2_FINGERPRINT`` tag, a hash of the model
weights, class codes, normalisation, input identity (file path/size/mtime or array content),
mask, nomenclature and mode. A rerun keeps finished files whose fingerprint and grid match and
recomputes the others (file granularity: an interrupted pass restarts from its first tile).
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import rasterio
from rasterio.windows import Window

from iota2_spot_s2.grid import Grid
from iota2_spot_s2.inference.tiling import PixelWindow
from iota2_spot_s2.io import WRITE_CACHE_MB, finalize_cog, open_tiled_gtiff
from iota2_spot_s2.nomenclature import Nomenclature

FINGERPRINT_TAG = "IOTA2_SPOT_S2_FINGERPRINT"
CONFIDENCE_NODATA = 255
PROBA_NODATA = 65535
PROBA_SCALE = 1000
KINDS = ("classes", "confidence", "proba")


@dataclass(frozen=True)
class OutputFile:
    """One output raster's layout."""

    kind: str
    path: Path
    count: int
    dtype: str
    nodata: int


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


def encode(proba: np.ndarray, invalid: np.ndarray, codes: np.ndarray) -> dict[str, np.ndarray]:
    """Turn float probabilities ``(K, h, w)`` into the three output arrays."""
    best = proba.argmax(axis=0)
    classes = codes[best]
    confidence = np.rint(proba.max(axis=0) * 100).astype(np.uint8)
    scaled = np.rint(proba * PROBA_SCALE).astype(np.uint16)
    classes[invalid] = 0
    confidence[invalid] = CONFIDENCE_NODATA
    scaled[:, invalid] = PROBA_NODATA
    return {"classes": classes[None], "confidence": confidence[None], "proba": scaled}


class MapWriter:
    """Writes the pending outputs window by window; finalises them as COGs on success.

    Args:
        specs: Outputs to write (the ones not already complete).
        grid: Output grid (the input's).
        codes: Class codes in logit order (increasing).
        nomenclature: For the colour table and band names (optional).
        tags: Dataset tags written in every file (includes the fingerprint).

    """

    def __init__(
        self,
        specs: Sequence[OutputFile],
        grid: Grid,
        codes: Sequence[int],
        nomenclature: Nomenclature | None,
        tags: dict[str, str],
    ) -> None:
        self.specs = list(specs)
        self.grid = grid
        self.codes = np.asarray(codes)
        self.nomenclature = nomenclature
        self.tags = tags
        self._open: dict[str, tuple[OutputFile, Path, rasterio.io.DatasetWriter]] = {}

    @contextlib.contextmanager
    def session(self) -> Iterator[MapWriter]:
        """Open temp GTiffs; on success convert them to COGs, on failure delete them.

        GDAL's block cache is capped at :data:`WRITE_CACHE_MB` meanwhile: its default (5 % of
        RAM) grows with the output size and made peak memory depend on the scene size.
        """
        with rasterio.Env(GDAL_CACHEMAX=WRITE_CACHE_MB):
            yield from self._session()

    def _session(self) -> Iterator[MapWriter]:
        try:
            for spec in self.specs:
                tmp = spec.path.with_name(f".{spec.path.stem}.{uuid.uuid4().hex[:8]}.partial.tif")
                self._open[spec.kind] = (spec, tmp, self._create(spec, tmp))
            yield self
            self._close()
            for spec, tmp, _ in self._open.values():
                finalize_cog(tmp, spec.path)
        finally:
            self._close()
            for _, tmp, _ in self._open.values():
                tmp.unlink(missing_ok=True)
            self._open.clear()

    def write(self, core: PixelWindow, proba: np.ndarray, invalid: np.ndarray) -> None:
        """Write one tile core."""
        if not self._open:
            return
        arrays = encode(proba, invalid, self.codes)
        window = Window(core.col, core.row, core.width, core.height)
        for kind, (spec, _, dst) in self._open.items():
            dst.write(arrays[kind].astype(spec.dtype, copy=False), window=window)

    def set_timing(self, seconds: float, pixels_per_second: float) -> None:
        """Record the run's speed in every file (returned again when a rerun resumes)."""
        for _, _, dst in self._open.values():
            dst.update_tags(SECONDS=f"{seconds:.3f}", PIXELS_PER_SECOND=f"{pixels_per_second:.1f}")

    def _create(self, spec: OutputFile, tmp: Path) -> rasterio.io.DatasetWriter:
        dst = open_tiled_gtiff(tmp, self.grid, spec.count, spec.dtype, nodata=spec.nodata)
        try:
            dst.update_tags(**self.tags)
            if spec.kind == "classes" and self.nomenclature is not None:
                dst.write_colormap(1, self.nomenclature.color_table())
            if spec.kind == "proba":
                self._describe_bands(dst)
            if spec.kind == "confidence":
                dst.set_band_description(1, "confidence (100 x max probability)")
            if spec.kind == "classes":
                dst.set_band_description(1, "class code")
        except Exception:
            dst.close()
            raise
        return dst

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


def read_timing(path: Path) -> tuple[float, float]:
    """``(seconds, pixels_per_second)`` recorded in a finished output (0 if absent)."""
    with rasterio.open(path) as src:
        tags = src.tags()
    return float(tags.get("SECONDS", 0.0)), float(tags.get("PIXELS_PER_SECOND", 0.0))

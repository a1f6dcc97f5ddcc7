"""Fused outputs written window by window into hidden tiled GeoTIFFs, then COGs on success.

Files (all on the target grid):

- ``classes``: fused class codes, uint8 (uint16 if a code or the undecided label exceeds 255),
  nodata = the no-data label, colour table from the nomenclature (undecided in grey);
- ``confidence``: uint8 ``round(100 * max fused probability)``, nodata 255;
- ``proba``: uint16 ``round(1000 * p)``, one band per class in code order (band tags ``code`` /
  ``name``), nodata 65535; rounding leaves each pixel's sum within 1000 +- K/2;
- ``choice``: uint8 choice map (0 none, 1 all agree, 2 first source, 3 second source, ...,
  see :func:`iota2_spot_s2.fusion.choice_map`), no nodata value (0 is a legal value).

With ``encoding="iota2"`` the confidence and probabilities follow iota2's ``classif/`` files
instead: confidence float32 max fused probability in [0, 1] and ``PROBAMAP``-like uint16
probabilities, both 0 where no source has data and without a nodata value (iota2 sets none).

Nothing appears under a final name before every window is written; on error every partial file
is deleted.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import rasterio
from rasterio.io import DatasetWriter
from rasterio.windows import Window

from iota2_spot_s2.fusion.core import FusionResult
from iota2_spot_s2.grid import Grid
from iota2_spot_s2.io import WRITE_CACHE_MB, finalize_cog, open_tiled_gtiff
from iota2_spot_s2.nomenclature import Nomenclature

CONFIDENCE_NODATA = 255
PROBA_NODATA = 65535
PROBA_SCALE = 1000
UNDECIDED_COLOR = (128, 128, 128, 255)
KINDS = ("classes", "confidence", "proba", "choice")
ENCODINGS = ("cog", "iota2")


@dataclass(frozen=True)
class OutputSpec:
    """Layout of one output raster."""

    kind: str
    path: Path
    count: int
    dtype: str
    nodata: int | None


def output_specs(
    paths: Mapping[str, Path],
    codes: Sequence[int],
    nodata_label: int,
    undecided_label: int,
    encoding: str = "cog",
) -> list[OutputSpec]:
    """Layouts of the outputs named in ``paths`` (keys among :data:`KINDS`)."""
    if encoding not in ENCODINGS:
        raise ValueError(f"encoding must be one of {ENCODINGS}, got {encoding!r}")
    top = max(*codes, nodata_label, undecided_label)
    iota2 = encoding == "iota2"
    layouts = {
        "classes": (1, "uint8" if top <= 255 else "uint16", nodata_label),
        "confidence": (1, "float32", None) if iota2 else (1, "uint8", CONFIDENCE_NODATA),
        "proba": (len(codes), "uint16", None if iota2 else PROBA_NODATA),
        "choice": (1, "uint8", None),
    }
    return [OutputSpec(kind, Path(paths[kind]), *layouts[kind]) for kind in KINDS if kind in paths]


def encode(result: FusionResult, encoding: str = "cog") -> dict[str, np.ndarray]:
    """The arrays of each output kind for one window (see the module docstring)."""
    invalid = ~result.valid
    iota2 = encoding == "iota2"
    confidence = np.nan_to_num(result.confidence).astype(np.float32)
    if not iota2:
        confidence = np.rint(confidence * 100).astype(np.uint8)
    confidence[invalid] = 0 if iota2 else CONFIDENCE_NODATA
    proba = np.rint(np.nan_to_num(result.probabilities) * PROBA_SCALE).astype(np.uint16)
    proba[:, invalid] = 0 if iota2 else PROBA_NODATA
    return {
        "classes": result.classes[None],
        "confidence": confidence[None],
        "proba": proba,
        "choice": result.choice[None],
    }


class FusionWriter:
    """Writes the outputs window by window; finalises them as COGs when the session succeeds."""

    def __init__(
        self,
        specs: Sequence[OutputSpec],
        grid: Grid,
        codes: Sequence[int],
        nomenclature: Nomenclature | None,
        tags: Mapping[str, str],
        undecided_label: int,
        encoding: str = "cog",
    ) -> None:
        self.specs, self.grid, self.codes = list(specs), grid, list(codes)
        self.nomenclature, self.tags = nomenclature, dict(tags)
        self.undecided_label = undecided_label
        self.encoding = encoding
        self._open: list[tuple[OutputSpec, Path, DatasetWriter]] = []

    @contextlib.contextmanager
    def session(self) -> Iterator[FusionWriter]:
        """Open hidden GTiffs; convert them to COGs on success, delete them on failure.

        GDAL's block cache is capped at :data:`~iota2_spot_s2.io.WRITE_CACHE_MB` meanwhile (the
        sources read inside the session too), so memory does not grow with the scene.
        """
        with rasterio.Env(GDAL_CACHEMAX=WRITE_CACHE_MB):
            yield from self._session()

    def _session(self) -> Iterator[FusionWriter]:
        try:
            for spec in self.specs:
                tmp = spec.path.with_name(f".{spec.path.stem}.{uuid.uuid4().hex[:8]}.partial.tif")
                spec.path.parent.mkdir(parents=True, exist_ok=True)
                self._open.append((spec, tmp, self._create(spec, tmp)))
            yield self
            self._close()
            for spec, tmp, _ in self._open:
                finalize_cog(tmp, spec.path)
        finally:
            self._close()
            for _, tmp, _ in self._open:
                tmp.unlink(missing_ok=True)
            self._open.clear()

    def write(self, window: Window, result: FusionResult) -> None:
        """Write one window of fused maps."""
        arrays = encode(result, self.encoding)
        for spec, _, dst in self._open:
            dst.write(arrays[spec.kind].astype(spec.dtype, copy=False), window=window)

    def _create(self, spec: OutputSpec, tmp: Path) -> DatasetWriter:
        dst = open_tiled_gtiff(tmp, self.grid, spec.count, spec.dtype, nodata=spec.nodata)
        try:
            dst.update_tags(**self.tags)
            self._describe(dst, spec)
        except Exception:
            dst.close()
            raise
        return dst

    def _describe(self, dst: DatasetWriter, spec: OutputSpec) -> None:
        nom = self.nomenclature
        if spec.kind == "classes":
            dst.set_band_description(1, "fused class code")
            if nom is not None:
                table = nom.color_table(nodata=int(spec.nodata or 0))
                table.setdefault(self.undecided_label, UNDECIDED_COLOR)
                dst.write_colormap(1, table)
        elif spec.kind == "confidence":
            scale = "" if self.encoding == "iota2" else "100 x "
            dst.set_band_description(1, f"fused confidence ({scale}max fused probability)")
        elif spec.kind == "choice":
            dst.set_band_description(1, "choice: 0 none, 1 all agree, 1+s source s alone")
        else:
            for band, code in enumerate(self.codes, start=1):
                name = nom.name_of(code) if nom is not None and code in nom.codes else ""
                dst.set_band_description(band, f"{code} {name}".strip())
                dst.update_tags(band, code=str(code), name=name)

    def _close(self) -> None:
        for _, _, dst in self._open:
            if not dst.closed:
                dst.close()

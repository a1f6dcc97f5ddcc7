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

The writer is :class:`~iota2_spot_s2.inference.writers.MapWriter` (hidden partial files,
per-window journal, parts of distributed runs, COGs at the end) with the fusion's own band
descriptions: nothing appears under a final name before every window is written. A one-process
fusion that fails deletes its partial files (it is cheap to redo); a distributed one keeps them
with its journal and parts, and the next call with the same inputs resumes it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from rasterio.io import DatasetWriter
from rasterio.windows import Window

from iota2_spot_s2.fusion.core import FusionResult
from iota2_spot_s2.grid import Grid
from iota2_spot_s2.inference.tiling import PixelWindow
from iota2_spot_s2.inference.writers import MapWriter, OutputFile
from iota2_spot_s2.nomenclature import Nomenclature

CONFIDENCE_NODATA = 255
PROBA_NODATA = 65535
PROBA_SCALE = 1000
UNDECIDED_COLOR = (128, 128, 128, 255)
KINDS = ("classes", "confidence", "proba", "choice")
ENCODINGS = ("cog", "iota2")


OutputSpec = OutputFile  # the layout of one output raster


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


def encode(
    result: FusionResult, encoding: str = "cog", kinds: Sequence[str] = KINDS
) -> dict[str, np.ndarray]:
    """The arrays of the output ``kinds`` for one window (see the module docstring).

    The other kinds (finished, or not asked for) are not computed.
    """
    invalid = ~result.valid
    iota2 = encoding == "iota2"
    out = {}
    if "classes" in kinds:
        out["classes"] = result.classes[None]
    if "confidence" in kinds:
        confidence = np.nan_to_num(result.confidence).astype(np.float32)
        if not iota2:
            confidence = np.rint(confidence * 100).astype(np.uint8)
        confidence[invalid] = 0 if iota2 else CONFIDENCE_NODATA
        out["confidence"] = confidence[None]
    if "proba" in kinds:
        proba = np.rint(np.nan_to_num(result.probabilities) * PROBA_SCALE).astype(np.uint16)
        proba[:, invalid] = 0 if iota2 else PROBA_NODATA
        out["proba"] = proba
    if "choice" in kinds:
        out["choice"] = result.choice[None]
    return out


class FusionWriter(MapWriter):
    """Writes the fused outputs window by window (a :class:`MapWriter` with fusion bands).

    Args:
        specs: The outputs (:func:`output_specs`).
        grid: Target grid.
        codes: Class codes in band order.
        nomenclature: Colour table and band names (optional).
        tags: Dataset tags of every output (the fingerprint names the journal and parts).
        undecided_label: Class value of undecided pixels (grey in the colour table).
        encoding: ``"cog"`` or ``"iota2"``.
        n_tiles: Windows of the whole pass (spaces the journal checkpoints).
        keep_on_failure: Keep partial files, journal and parts on failure (to resume).

    """

    def __init__(
        self,
        specs: Sequence[OutputSpec],
        grid: Grid,
        codes: Sequence[int],
        nomenclature: Nomenclature | None,
        tags: Mapping[str, str],
        undecided_label: int,
        encoding: str = "cog",
        n_tiles: int = 0,
        keep_on_failure: bool = False,
    ) -> None:
        super().__init__(specs, grid, codes, nomenclature, dict(tags), n_tiles, keep_on_failure)
        self.undecided_label = undecided_label
        self.encoding = encoding

    def write_fused(self, window: Window, result: FusionResult) -> None:
        """Write one window of fused maps."""
        core = PixelWindow(int(window.row_off), int(window.col_off), int(window.height),
                           int(window.width))  # fmt: skip
        self.write_encoded(core, encode(result, self.encoding, self.kinds))

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
            for band, code in enumerate(self.codes.tolist(), start=1):
                name = nom.name_of(code) if nom is not None and code in nom.codes else ""
                dst.set_band_description(band, f"{code} {name}".strip())
                dst.update_tags(band, code=str(code), name=name)

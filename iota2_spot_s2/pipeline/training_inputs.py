"""Labels and split for ``fuse-classify train``: the block split, a user's split, or polygons.

Three ways to say which pixels train, select and test a model (one at a time):

- the 64/16/20 block split of :func:`~iota2_spot_s2.pipeline.prepared.prepare_reference`
  (``block_m`` blocks, seeded);
- a **split raster** on the image grid (1 train, 2 validation, 3 test, 0 unused), e.g. whole
  areas held out by the user;
- **validation polygons** (a second reference, as iota2 users have): their labelled pixels are
  the validation subset, every other labelled pixel trains (nothing is tested here).

Either way the labels and the split are written as ``labels.tif`` / ``split.tif`` in
``out_dir`` and returned as a :class:`~iota2_spot_s2.pipeline.prepared.PreparedReference` whose
``provenance`` (reference, field, ignored label, and the block size and seed, the split raster
or the validation reference) the trained checkpoint's fingerprint records
(:mod:`iota2_spot_s2.training.checkpoint_fingerprint`).
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import rasterio
import xarray as xr

from iota2_spot_s2.errors import InputError
from iota2_spot_s2.grid import Grid
from iota2_spot_s2.pipeline.prepared import PreparedReference, prepare_reference
from iota2_spot_s2.pipeline.stages import check_on_grid, image_grid, read_labels, write_band
from iota2_spot_s2.reference import TRAIN, VAL, split_summary


def prepare_training_reference(
    image: xr.DataArray,
    reference: Path,
    field: str,
    out_dir: Path,
    *,
    block_m: float,
    seed: int,
    split: Path | None = None,
    val_reference: Path | None = None,
    ignore_label: int | None = None,
) -> PreparedReference:
    """Labels and split on the image grid (module docstring), written to ``out_dir``.

    Raises:
        InputError: Both ``split`` and ``val_reference``; an off-grid or ill-coded split raster;
            no labelled training or validation pixel.
    """
    if split is not None and val_reference is not None:
        raise InputError(val_reference, "give a split raster or validation polygons, not both")
    if split is None and val_reference is None:
        return prepare_reference(image, reference, field, out_dir, block_m=block_m, seed=seed,
                                 ignore_label=ignore_label)  # fmt: skip
    grid = image_grid(image)
    labels, report = read_labels(reference, grid, field, ignore_label=ignore_label)
    labels = np.where(np.asarray(image.isnull().any("band")), 0, labels).astype(np.uint16)
    if split is not None:
        subsets, source = _read_split(split, grid), split
    else:
        assert val_reference is not None
        val_labels, _ = read_labels(val_reference, grid, field, ignore_label=ignore_label)
        subsets = np.where(val_labels > 0, VAL, TRAIN).astype(np.uint8)
        labels = np.where(val_labels > 0, val_labels, labels).astype(np.uint16)
        source = val_reference
    subsets = np.where(labels > 0, subsets, 0).astype(np.uint8)
    for code, name in ((TRAIN, "training"), (VAL, "validation")):
        if not (subsets == code).any():
            raise InputError(source, f"no labelled {name} pixel")
    out_dir = Path(out_dir)
    labels_path = write_band(out_dir / "labels.tif", labels, grid)
    split_path = write_band(out_dir / "split.tif", subsets, grid)
    summary = {"rasterize": report, "split": split_summary(labels, subsets),
               "split_source": str(source)}  # fmt: skip
    provenance = {"reference": str(reference), "field": field, "ignore_label": ignore_label,
                  "split": split, "val_reference": val_reference}  # fmt: skip
    return PreparedReference(grid, labels_path, split_path, summary, provenance=provenance)


def _read_split(path: Path, grid: Grid) -> np.ndarray:
    check_on_grid(path, grid, "split raster")
    with rasterio.open(path) as src:
        values = src.read(1)
    bad = np.setdiff1d(np.unique(values), [0, 1, 2, 3])
    if bad.size:
        raise InputError(path, f"split codes must be 0-3 (1 train, 2 validation, 3 test), "
                         f"found {bad[:5].tolist()}")  # fmt: skip
    return values.astype(np.uint8)


@contextmanager
def staged(final_dir: Path) -> Iterator[Path]:
    """A hidden folder beside ``final_dir`` whose files replace ``final_dir``'s on success only.

    ``fuse-classify train`` writes a checkpoint's labels and split there first, so a refused
    run (bad inputs, a checkpoint of other labels/split) leaves the folder of the checkpoint as
    it was.
    """
    final_dir.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f".{final_dir.name}.", dir=final_dir.parent) as tmp:
        yield Path(tmp)
        final_dir.mkdir(exist_ok=True)
        for item in sorted(Path(tmp).iterdir()):
            os.replace(item, final_dir / item.name)

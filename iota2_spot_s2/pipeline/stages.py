"""Single stages over files: reference preparation, training, mapping, evaluation.

Each function is what one ``fuse-classify`` sub-command calls; they take paths and plain values,
never a config object.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
import xarray as xr

from iota2_spot_s2.errors import InputError
from iota2_spot_s2.grid import Grid
from iota2_spot_s2.io import atomic_output
from iota2_spot_s2.nomenclature import Nomenclature, read_nomenclature

RASTER_SUFFIXES = {".tif", ".tiff", ".vrt", ".img", ".jp2"}
SUBSETS = {"train": 1, "validation": 2, "test": 3}


@dataclass(frozen=True)
class PreparedReference:
    """Labels and split on an image's grid, and where they were written."""

    grid: Grid
    labels: np.ndarray
    split: np.ndarray
    labels_path: Path
    split_path: Path
    report: dict[str, Any]
    s2_grid: Grid | None = None
    s2_labels: np.ndarray | None = None
    s2_split: np.ndarray | None = None


def image_grid(image: xr.DataArray) -> Grid:
    """The grid of a raster opened by :mod:`iota2_spot_s2.sensors` (attrs ``crs``/``transform``)."""
    from affine import Affine
    from rasterio.crs import CRS

    transform = Affine(*image.attrs["transform"][:6])
    return Grid(
        CRS.from_user_input(image.attrs["crs"]), transform, image.sizes["x"], image.sizes["y"]
    )


def read_labels(
    reference: Path,
    grid: Grid,
    field: str,
    *,
    mapping: Path | None = None,
    nomenclature: Nomenclature | None = None,
    layer: str | None = None,
) -> tuple[np.ndarray, dict[str, Any]]:
    """Labels on ``grid`` from a vector (rasterized) or a raster already on that grid."""
    if reference.suffix.lower() in RASTER_SUFFIXES:
        ref_grid = Grid.from_raster(reference)
        if (ref_grid.transform, ref_grid.shape) != (grid.transform, grid.shape):
            raise InputError(reference, "reference raster is not on the image grid")
        with rasterio.open(reference) as src:
            labels = src.read(1).astype(np.uint16)
        return labels, {"source": str(reference), "kind": "raster"}
    from iota2_spot_s2.reference import rasterize_reference

    result = rasterize_reference(
        reference, grid, field, layer=layer, mapping=mapping, nomenclature=nomenclature
    )
    return result.labels, _as_dict(result.report)


def prepare_reference(
    image: xr.DataArray,
    reference: Path,
    field: str,
    out_dir: Path,
    *,
    block_m: float,
    seed: int,
    mapping: Path | None = None,
    nomenclature: Nomenclature | None = None,
    s2_grid: Grid | None = None,
    layer: str | None = None,
    holdout: np.ndarray | None = None,
) -> PreparedReference:
    """Rasterize the reference on the image grid, split it 64/16/20 by blocks, write both.

    ``holdout`` (bool, on the grid the blocks are drawn on) forces pixels into the test subset,
    whatever their block: e.g. iota2's validation polygons, so that no model trained here sees
    the pixels iota2 validates on.

    With ``s2_grid`` the blocks are drawn on the Sentinel-2 grid (labels rasterized there too)
    and carried onto the image grid by nearest neighbour: every SPOT pixel takes the subset of
    the 10 m pixel holding its centre, so no 10 m pixel straddles two subsets and the SPOT,
    Sentinel-2 and fused strategies are all scored on the same test blocks.
    """
    from iota2_spot_s2.reference import TEST, split_blocks, split_summary

    grid = image_grid(image)
    labels, report = read_labels(
        reference, grid, field, mapping=mapping, nomenclature=nomenclature, layer=layer
    )
    invalid = np.asarray(image.isnull().any("band"))
    labels = np.where(invalid, 0, labels).astype(np.uint16)
    split_grid = s2_grid or grid
    block = max(4, int(round(block_m / split_grid.res[0])))
    s2_labels = s2_split = None
    if s2_grid is None:
        split = _hold_out(split_blocks(labels, block_size=block, seed=seed), labels, holdout, TEST)
    else:
        s2_labels, _ = read_labels(
            reference, s2_grid, field, mapping=mapping, nomenclature=nomenclature, layer=layer
        )
        s2_split = split_blocks(s2_labels, block_size=block, seed=seed)
        whole_blocks = spread_over_blocks(s2_split, block)
        s2_split = _hold_out(s2_split, s2_labels, holdout, TEST)
        whole_blocks = _hold_out(whole_blocks, None, holdout, TEST)
        split = np.where(labels > 0, warp_nearest(whole_blocks, s2_grid, grid), 0).astype(np.uint8)
        write_band(out_dir / "s2_labels.tif", s2_labels, s2_grid, nomenclature=nomenclature)
        write_band(out_dir / "s2_split.tif", s2_split.astype(np.uint8), s2_grid)
    report = {
        "rasterize": report,
        "split": _as_dict(split_summary(labels, split)),
        "block_size_px": block,
        "split_grid": "sentinel2" if s2_grid is not None else "image",
    }
    labels_path = write_band(out_dir / "labels.tif", labels, grid, nomenclature=nomenclature)
    split_path = write_band(out_dir / "split.tif", split.astype(np.uint8), grid)
    return PreparedReference(
        grid, labels, split, labels_path, split_path, report, s2_grid, s2_labels, s2_split
    )


def _hold_out(
    split: np.ndarray, labels: np.ndarray | None, holdout: np.ndarray | None, test: int
) -> np.ndarray:
    """``split`` with the ``holdout`` pixels moved to the test subset (labelled ones only)."""
    if holdout is None:
        return split
    if holdout.shape != split.shape:
        raise ValueError(f"holdout {holdout.shape} is not on the split grid {split.shape}")
    forced = holdout if labels is None else holdout & (labels > 0)
    return np.where(forced, test, np.where(holdout, 0, split)).astype(split.dtype)


def spread_over_blocks(split: np.ndarray, block: int) -> np.ndarray:
    """Give every pixel of a block its block's subset, labelled or not.

    Carried to the finer SPOT grid, this keeps the labelled SPOT pixels that fall in a 10 m
    pixel whose centre is unlabelled (polygon edges, small buildings).
    """
    from iota2_spot_s2.reference import block_ids

    ids = block_ids(split.shape, block)
    subset = np.zeros(int(ids.max()) + 1, np.uint8)
    np.maximum.at(subset, ids.ravel(), split.ravel().astype(np.uint8))
    return subset[ids]


def warp_nearest(array: np.ndarray, src: Grid, dst: Grid) -> np.ndarray:
    """Carry a categorical band from one grid onto another (GDAL nearest neighbour)."""
    from rasterio.warp import Resampling, reproject

    out = np.zeros(dst.shape, dtype=array.dtype)
    reproject(
        array, out, src_transform=src.transform, src_crs=src.crs, dst_transform=dst.transform,
        dst_crs=dst.crs, resampling=Resampling.nearest, src_nodata=None, dst_nodata=0,
    )  # fmt: skip
    return out


def write_band(
    path: Path, array: np.ndarray, grid: Grid, *, nomenclature: Nomenclature | None = None
) -> Path:
    """Write one small band (labels, split) as a compressed GeoTIFF, atomically."""
    with atomic_output(path) as tmp:
        profile = grid.profile(
            driver="GTiff",
            count=1,
            dtype=array.dtype.name,
            nodata=0,
            compress="DEFLATE",
            tiled=True,
        )
        with rasterio.open(tmp, "w", **profile) as dst:
            dst.write(array, 1)
            if nomenclature is not None and array.dtype == np.uint8:
                dst.write_colormap(1, nomenclature.color_table())
    return path


def load_nomenclature(
    nomenclature_path: Path | None, color_path: Path | None
) -> Nomenclature | None:
    """The iota2 nomenclature (and colours) when given."""
    if nomenclature_path is None:
        return None
    return read_nomenclature(nomenclature_path, color_path)


def train_from_files(
    *,
    image: Path,
    reference: Path,
    field: str,
    model_name: str,
    checkpoint: Path,
    epochs: int,
    max_minutes: float | None,
    seed: int,
    block_m: float,
    **train_kwargs: Any,
) -> Any:
    """``fuse-classify train``: labels + split next to the checkpoint, then train (resumable)."""
    from iota2_spot_s2.sensors import open_spot
    from iota2_spot_s2.training import train

    data = open_spot(image)
    prepared = prepare_reference(
        data, reference, field, checkpoint.parent / "reference", block_m=block_m, seed=seed
    )
    return train(
        data,
        prepared.labels,
        prepared.split,
        model_name=model_name,
        epochs=epochs,
        max_minutes=max_minutes,
        seed=seed,
        checkpoint_path=checkpoint,
        **train_kwargs,
    )


def predict_from_files(
    *,
    checkpoint: Path,
    image: Path,
    out_dir: Path,
    tile: int,
    mode: str,
    write_proba: bool,
    nomenclature_path: Path | None,
    color_path: Path | None,
    prefix: str,
    bf16: bool = False,
) -> Any:
    """``fuse-classify predict``: map a whole image with a trained checkpoint."""
    from iota2_spot_s2.inference import predict_map
    from iota2_spot_s2.sensors import open_spot
    from iota2_spot_s2.training import load_model

    model = load_model(checkpoint)
    return predict_map(
        model,
        open_spot(image),
        out_dir,
        tile=tile,
        mode=mode,
        write_proba=write_proba,
        nomenclature=load_nomenclature(nomenclature_path, color_path),
        prefix=prefix,
        autocast_bf16=bf16,
    )


def evaluate_from_files(
    *,
    reference: Path,
    produced: Path,
    out_dir: Path,
    field: str = "code",
    split: Path | None = None,
    subset: str = "test",
    title: str | None = None,
    codes: list[int] | None = None,
) -> Any:
    """``fuse-classify evaluate``: confusion matrix and scores of a map on a reference subset."""
    from iota2_spot_s2.evaluation import confusion_matrix, scores, write_report

    grid = Grid.from_raster(produced)
    with rasterio.open(produced) as src:
        produced_arr = src.read(1)
    labels, _ = read_labels(reference, grid, field)
    if split is not None:
        split_grid = Grid.from_raster(split)
        if (split_grid.transform, split_grid.shape) != (grid.transform, grid.shape):
            raise InputError(split, "split raster is not on the grid of the evaluated map")
        with rasterio.open(split) as src:
            labels = np.where(src.read(1) == SUBSETS[subset], labels, 0)
    codes = codes or sorted(int(c) for c in np.unique(labels) if c != 0)
    if not codes:
        raise InputError(reference, "no labelled pixel in the evaluated subset")
    cm = confusion_matrix(labels, produced_arr, codes)
    result = scores(cm, codes)
    title = title or f"{produced.name} vs {reference.name} ({subset if split else 'all'} pixels)"
    write_report(result, cm, codes, out_dir, title=title)
    return result


def _as_dict(obj: Any) -> dict[str, Any]:
    if isinstance(obj, dict):
        return obj
    if hasattr(obj, "to_dict"):
        return dict(obj.to_dict())
    from dataclasses import asdict, is_dataclass

    return asdict(obj) if is_dataclass(obj) and not isinstance(obj, type) else {"value": str(obj)}

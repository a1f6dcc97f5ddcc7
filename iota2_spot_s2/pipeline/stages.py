"""Single stages over files: reference preparation, training, mapping, evaluation.

Each function is what one ``fuse-classify`` sub-command calls; they take paths and plain values,
never a config object.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import rasterio
import xarray as xr

from iota2_spot_s2.errors import InputError
from iota2_spot_s2.grid import Grid
from iota2_spot_s2.io import atomic_output, undo_on_failure, written_or_refused
from iota2_spot_s2.nomenclature import Nomenclature, read_nomenclature

RASTER_SUFFIXES = {".tif", ".tiff", ".vrt", ".img", ".jp2"}
SUBSETS = {"train": 1, "validation": 2, "test": 3}


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
    ignore_label: int | None = None,
) -> tuple[np.ndarray, dict[str, Any]]:
    """Labels on ``grid`` from a vector (rasterized) or a raster already on that grid.

    0 is no-data in the returned labels; ``ignore_label`` (and a label raster's nodata tag)
    become 0 too.
    """
    if reference.suffix.lower() in RASTER_SUFFIXES:
        return read_label_raster(reference, grid, ignore_label=ignore_label)
    from iota2_spot_s2.reference import rasterize_reference

    result = rasterize_reference(
        reference, grid, field, layer=layer, mapping=mapping, nomenclature=nomenclature
    )
    labels = result.labels
    if ignore_label is not None:
        labels = np.where(labels == ignore_label, 0, labels).astype(labels.dtype)
    return labels, _as_dict(result.report)


def check_on_grid(path: Path, grid: Grid, what: str) -> None:
    """Refuse a raster that is not on ``grid`` (CRS, transform and shape).

    Raises:
        InputError: Naming ``path`` and what differs.
    """
    other = Grid.from_raster(path)
    if other.crs != grid.crs:
        raise InputError(path, f"{what} is in {other.crs}, the image in {grid.crs}")
    if (other.transform, other.shape) != (grid.transform, grid.shape):
        raise InputError(path, f"{what} is not on the image grid")


def read_label_raster(
    path: Path, grid: Grid, *, ignore_label: int | None = None
) -> tuple[np.ndarray, dict[str, Any]]:
    """A label raster on ``grid`` as uint16 codes with 0 = no-data.

    The raster's nodata tag and ``ignore_label`` become 0. A raster that uses 0 as a class
    (0 present while another value is its no-data) is refused: 0 is no-data here.

    Raises:
        InputError: Off-grid raster, non-integer or negative codes, or 0 used as a class.
    """
    check_on_grid(path, grid, "reference raster")
    with rasterio.open(path) as src:
        raw, nodata = src.read(1), src.nodata
    if not np.issubdtype(raw.dtype, np.integer):
        raise InputError(path, f"label raster must hold integer codes, not {raw.dtype}")
    if raw.size and (raw.min() < 0 or raw.max() > np.iinfo(np.uint16).max):
        raise InputError(path, "label codes must lie in 0..65535")
    ignored = {int(v) for v in (nodata, ignore_label) if v is not None}
    if ignored and 0 not in ignored and (raw == 0).any():
        raise InputError(path, f"uses 0 as a class while {sorted(ignored)} is its no-data: "
                         "recode the classes to 1.. (0 is no-data here)")  # fmt: skip
    labels = raw.astype(np.uint16)
    for value in ignored:
        labels[raw == value] = 0
    report = {"source": str(path), "kind": "raster", "ignored": sorted(ignored),
              "ignored_pixels": int((raw != 0).sum() - (labels != 0).sum())}  # fmt: skip
    return labels, report


def refuse_unlabelled(labels: np.ndarray, reference: Path, field: str) -> None:
    """Refuse labels without one labelled pixel, naming the reference (not "labels").

    Raises:
        InputError: An empty layer, a field that is 0 everywhere, or nothing over the image.
    """
    if not np.any(labels):
        raise unlabelled_error(reference, field)


def unlabelled_error(reference: Path, field: str) -> InputError:
    """The error of a reference that labels no pixel of the image, naming it."""
    where = "" if reference.suffix.lower() in RASTER_SUFFIXES else f" (field '{field}')"
    return InputError(reference, f"no labelled pixel on the image's grid{where}: an empty "
                      "layer, only no-data codes, or no polygon over the image")  # fmt: skip


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
    split: Path | None = None,
    val_reference: Path | None = None,
    ignore_label: int | None = None,
    **train_kwargs: Any,
) -> Any:
    """``fuse-classify train``: labels + split next to the checkpoint, then train (resumable).

    The labels and split are written to ``<checkpoint stem>_reference/`` beside the checkpoint,
    so two models trained into one folder keep their own. The split is the 64/16/20 block split
    (``block_m``), the user's ``split`` raster (1 train, 2 validation, 3 test), or every labelled
    pixel for training with ``val_reference``'s pixels for validation.

    A checkpoint is resumed only if trained on exactly these labels and split (its
    ``data_fingerprint``); else nothing is written, checkpoint and reference folder alike.

    Raises:
        InputError: Bad inputs, or a checkpoint of other (or unrecorded) labels/split.
    """
    from iota2_spot_s2.pipeline.training_inputs import prepare_training_reference, staged
    from iota2_spot_s2.sensors import open_spot
    from iota2_spot_s2.training import checkpoint_fingerprint as fp
    from iota2_spot_s2.training import train
    from iota2_spot_s2.training.loop import check_training_args

    check_training_args(model_name, epochs=epochs, max_minutes=max_minutes, **train_kwargs)
    data = open_spot(image)
    if checkpoint.is_dir():
        raise InputError(checkpoint, "is a folder: give the checkpoint file (e.g. model.pt)")
    with undo_on_failure(checkpoint.parent, on=(InputError,)):
        with staged(reference_dir(checkpoint)) as staging:
            prepared = prepare_training_reference(
                data, reference, field, staging, block_m=block_m, seed=seed, split=split,
                val_reference=val_reference, ignore_label=ignore_label,
            )  # fmt: skip
            refuse_unlabelled(prepared.labels, reference, field)
            if train_kwargs.get("resume", True) and checkpoint.exists():
                current = fp.data_fingerprint(prepared.labels, prepared.split, prepared.provenance)
                fp.refuse_other_data(checkpoint, fp.stored_fingerprint(checkpoint), current)
        prepared = prepared.moved_to(reference_dir(checkpoint))
        with fp.provenance_of_training_data(prepared.provenance):
            return train(
                data, prepared.labels, prepared.split, model_name=model_name, epochs=epochs,
                max_minutes=max_minutes, seed=seed, checkpoint_path=checkpoint, **train_kwargs,
            )  # fmt: skip


def reference_dir(checkpoint: Path) -> Path:
    """Where ``train`` writes a checkpoint's labels and split: ``<stem>_reference/``."""
    return checkpoint.parent / f"{checkpoint.with_suffix('').name}_reference"


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
    precision: str = "fp32",
    device: str = "cpu",
    scheduler: str | None = None,
    workers: int | None = None,
) -> Any:
    """``fuse-classify predict``: map a whole image with a trained checkpoint on ``device``.

    ``precision``: the network's arithmetic (:data:`~iota2_spot_s2.devices.PRECISIONS`, checked
    against ``device`` by the CLI).

    ``scheduler``/``workers``: dask.distributed tile tasks (:func:`~iota2_spot_s2.inference.
    predict_map`); default one process.
    """
    from iota2_spot_s2.devices import resolve_device
    from iota2_spot_s2.inference import predict_map
    from iota2_spot_s2.sensors import open_spot
    from iota2_spot_s2.training import load_model

    model = load_model(checkpoint)
    data = open_spot(image)
    bands = len(model.band_mean)
    if data.sizes["band"] != bands:
        raise InputError(image, f"has {data.sizes['band']} bands, the model {checkpoint.name} "
                         f"was trained on {bands}")  # fmt: skip
    nomenclature = load_nomenclature(nomenclature_path, color_path)
    if nomenclature is not None and nomenclature_path is not None:
        known = {int(c) for c in nomenclature.codes}
        missing = [int(c) for c in model.class_codes if int(c) not in known]
        if missing:
            raise InputError(nomenclature_path, f"has no class {missing} of the model "
                             f"{checkpoint.name}: wrong nomenclature for this model?")  # fmt: skip
    model.model.to(resolve_device(device))
    with undo_on_failure(out_dir, on=(InputError,)), written_or_refused(out_dir, "the maps"):
        return predict_map(
            model, data, out_dir, tile=tile, mode=mode, write_proba=write_proba,
            nomenclature=nomenclature, prefix=prefix, precision=precision, scheduler=scheduler,
            workers=workers,
        )  # fmt: skip


def read_class_map(path: Path) -> tuple[np.ndarray, Grid]:
    """A one-band integer class map and its grid; probability or float rasters are refused."""
    grid = class_map_grid(path)
    with rasterio.open(path) as src:
        return src.read(1), grid


def class_map_grid(path: Path) -> Grid:
    """The grid of a one-band integer class map; probability or float rasters are refused."""
    with rasterio.open(path) as src:
        if src.count != 1 or not np.issubdtype(np.dtype(src.dtypes[0]), np.integer):
            raise InputError(
                path,
                f"is not a class map ({src.count} bands of {src.dtypes[0]}): "
                "give the one-band integer *_classes.tif",
            )
    return Grid.from_raster(path)


def _as_dict(obj: Any) -> dict[str, Any]:
    if isinstance(obj, dict):
        return obj
    if hasattr(obj, "to_dict"):
        return dict(obj.to_dict())
    from dataclasses import asdict, is_dataclass

    return asdict(obj) if is_dataclass(obj) and not isinstance(obj, type) else {"value": str(obj)}

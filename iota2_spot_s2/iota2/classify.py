"""The SPOT FCN on one iota2 tile: train (or load), map, write its ``spot_s2/classif/`` files.

Per tile and seed ``S`` (``arg_train.runs`` seeds), with ``M = spot_s2_fusion.iota2_model``:

1. the tile grid (:func:`~iota2_spot_s2.iota2.tree.tile_grid`) and the part of the tile's SPOT
   image over it;
2. the model: ``spot_s2_fusion.checkpoint`` when given, else an FCN trained on the tile
   (``spot_s2/<TILE>/models/fcn_seed_<S>.pt``, resumable) from ``chain.ground_truth``, blocks
   drawn on the tile grid with seed ``S``; when iota2's ``dataAppVal/<TILE>_seed_<S>_val.sqlite``
   exists its polygons are held out of training (put in the test subset), so fused masses
   measured on them are not biased towards the FCN;
3. the SPOT-grid maps (``spot_s2/<TILE>/maps/fcn_seed_<S>_*.tif``, 1.5 m COGs);
4. their probabilities averaged onto the tile grid (GDAL ``average`` warping), written into
   ``spot_s2/classif/`` as ``Classif_<TILE>_model_<M>_seed_<S>_SPOT.tif`` (uint8 codes,
   0 nodata), ``<TILE>_model_<M>_confidence_seed_<S>_SPOT.tif`` (float32 0-1) and
   ``PROBAMAP_<TILE>_model_<M>_seed_<S>_SPOT.tif`` (uint16 0-1000, one band per class in
   increasing code order, 0 where SPOT does not cover the tile): iota2's names, in a folder of
   our own beside iota2's ``classif/`` so that iota2's mosaic globs never take them.

The long parts resume: a rerun continues the checkpoint and keeps fingerprinted SPOT maps; the
10 m ``spot_s2/classif/`` files are rewritten (seconds), atomically.

Test labels never reach training (:mod:`iota2_spot_s2.training.checkpoint_fingerprint`):

- a checkpoint trained here is resumed only when its ``data_fingerprint`` (hash of the labels
  and split it was trained on) names this run's labels and split; when they changed (another
  ground truth, field, mapping table, ``split_block_m``, or iota2's ``dataAppVal`` polygons
  appearing or changing) or it has no fingerprint (older versions), it is moved aside to
  ``fcn_seed_<S>.stale-<hash>.pt`` (one log line) and the FCN is trained again from scratch;
- a pretrained ``spot_s2_fusion.checkpoint`` is used for prediction only when it records the
  split it was trained on (a ``data_fingerprint`` with its split record, as every checkpoint of
  ``fuse-classify train`` / ``run`` / this step has); one without is refused (``InputError``),
  since nothing then says which pixels its weights saw. Its provenance is logged: checking that
  it held out the pixels scored later (iota2's validation polygons) is the user's part.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import rasterio
import xarray as xr
from affine import Affine
from rasterio.warp import transform_bounds
from rasterio.windows import Window, from_bounds

from iota2_spot_s2.errors import InputError
from iota2_spot_s2.grid import Grid
from iota2_spot_s2.iota2.names import SPOT_SUFFIX, classif_names
from iota2_spot_s2.iota2.tree import iota2_field, iota2_validation, tile_grid
from iota2_spot_s2.nomenclature import Nomenclature
from iota2_spot_s2.settings import RunConfig


@dataclass(frozen=True)
class TileJob:
    """One input of the step: a tile and a seed."""

    tile: str
    seed: int


@dataclass(frozen=True)
class SpotClassification:
    """What :func:`classify_tile` wrote for one tile and seed."""

    tile: str
    seed: int
    grid: Grid
    classif: dict[str, Path]
    spot_maps: dict[str, Path]
    checkpoint: Path
    class_codes: tuple[int, ...]
    reference_dir: Path | None


def require_s2_path(run: RunConfig) -> Path:
    """``chain.s2_path``, which gives the tile grids of every iota2 route."""
    if run.chain.s2_path is None:
        raise InputError(run.source, "chain.s2_path is required: it gives iota2's tile grids")
    return run.chain.s2_path


def spot_image_of(run: RunConfig, tile: str) -> Path:
    """The SPOT image of ``tile`` (``spot_s2_fusion.spot_images``)."""
    if tile not in run.plugin.spot_images:
        raise InputError(run.source, f"spot_s2_fusion.spot_images has no image for tile {tile}")
    return run.plugin.spot_images[tile]


def tiles_with_spot(run: RunConfig, tiles: list[str] | None = None) -> list[str]:
    """The tiles to work on.

    ``tiles`` when given (each must have a SPOT image), else every tile of ``chain.list_tile``
    that has one.

    Raises:
        InputError: If a chosen tile has no SPOT image, or no tile has one.

    """
    if tiles:
        for tile in tiles:
            spot_image_of(run, tile)
        return list(tiles)
    chosen = [t for t in run.chain.list_tile if t in run.plugin.spot_images]
    if not chosen:
        raise InputError(
            run.source, "no tile of chain.list_tile has an entry in spot_s2_fusion.spot_images"
        )
    return chosen


def crop_to_grid(image: xr.DataArray, grid: Grid, path: Path) -> xr.DataArray:
    """The pixels of a lazy ``(band, y, x)`` image over ``grid``'s bounds (nothing resampled).

    Raises:
        InputError: If the image does not overlap the grid.

    """
    from rasterio.crs import CRS

    transform = Affine(*image.attrs["transform"][:6])
    bounds = transform_bounds(grid.crs, CRS.from_user_input(image.attrs["crs"]), *grid.bounds)
    exact = from_bounds(*bounds, transform=transform)
    c0, r0 = math.floor(exact.col_off + 1e-6), math.floor(exact.row_off + 1e-6)
    c1 = math.ceil(exact.col_off + exact.width - 1e-6)
    r1 = math.ceil(exact.row_off + exact.height - 1e-6)
    win = Window(c0, r0, c1 - c0, r1 - r0)
    full = Window(0, 0, image.sizes["x"], image.sizes["y"])
    try:
        win = win.intersection(full)
    except rasterio.errors.WindowError:
        win = Window(0, 0, 0, 0)
    if win.width < 1 or win.height < 1:
        raise InputError(path, "the SPOT image does not overlap the tile")
    r0, c0 = int(win.row_off), int(win.col_off)
    cropped = image.isel(y=slice(r0, r0 + int(win.height)), x=slice(c0, c0 + int(win.width)))
    cropped.attrs = dict(image.attrs, transform=tuple(transform @ Affine.translation(c0, r0))[:6])
    return cropped


def classify_tile(
    run: RunConfig, job: TileJob, nomenclature: Nomenclature | None = None
) -> SpotClassification:
    """Train (or load) the SPOT FCN for one tile and seed; write its ``spot_s2/classif/`` files."""
    from iota2_spot_s2.devices import resolve_cfg_device, resolve_cfg_precision
    from iota2_spot_s2.fusion import fuse_rasters
    from iota2_spot_s2.inference import predict_map
    from iota2_spot_s2.sensors import open_spot
    from iota2_spot_s2.training import load_model

    chain, plugin = run.chain, run.plugin
    training = plugin.recipe("fcn")["precision"] if plugin.checkpoint is None else None
    precision = resolve_cfg_precision(plugin.map_precision, plugin.device, run.source, training)
    grid = tile_grid(require_s2_path(run), job.tile, chain.spatial_resolution)
    spot_path = spot_image_of(run, job.tile)
    spot = crop_to_grid(open_spot(spot_path), grid, spot_path)
    work = chain.output_path / "spot_s2" / job.tile
    checkpoint, reference_dir = _model(run, job, spot, grid, work, nomenclature)
    model = load_model(checkpoint)
    model.model.to(resolve_cfg_device(plugin.device, run.source))
    codes = tuple(int(c) for c in np.asarray(model.class_codes).tolist())
    maps = predict_map(
        model, spot, work / "maps", tile=plugin.tile_size, write_proba=True,
        nomenclature=nomenclature, prefix=f"fcn_seed_{job.seed}", scheduler=plugin.scheduler,
        workers=plugin.workers, precision=precision,
    )  # fmt: skip
    assert maps.proba is not None
    names = classif_names(job.tile, plugin.iota2_model, job.seed, SPOT_SUFFIX)
    paths = names.paths(chain.output_path / "classif")
    fuse_rasters(
        [maps.proba], chain.output_path / "classif", codes=codes, rule="mean", grid=grid,
        names={k: str(p) for k, p in paths.items()}, kinds=("classes", "confidence", "proba"),
        encoding="iota2", nomenclature=nomenclature, tags={
            "IOTA2_SPOT_S2_STEP": "SpotFCNClassification", "SPOT_IMAGE": str(spot_path),
            "CHECKPOINT": str(checkpoint), "SEED": str(job.seed),
            "AGGREGATION": "GDAL average of the 1.5 m FCN probabilities (one-source 'mean')",
        },
    )  # fmt: skip
    if nomenclature is not None:  # QGIS style beside the class map (it has a colour table)
        nomenclature.write_qml(paths["classes"].with_suffix(".qml"))
    spot_maps = {"classes": maps.class_map, "confidence": maps.confidence, "proba": maps.proba}
    return SpotClassification(
        job.tile, job.seed, grid, paths, spot_maps, checkpoint, codes, reference_dir
    )


def _model(
    run: RunConfig,
    job: TileJob,
    spot: xr.DataArray,
    grid: Grid,
    work: Path,
    nomenclature: Nomenclature | None,
) -> tuple[Path, Path | None]:
    """The checkpoint to map with: the configured one, or one trained on this tile and seed."""
    from iota2_spot_s2.devices import resolve_cfg_device
    from iota2_spot_s2.pipeline.prepared import prepare_reference
    from iota2_spot_s2.training import checkpoint_fingerprint as fp
    from iota2_spot_s2.training import train

    chain, plugin = run.chain, run.plugin
    if plugin.checkpoint is not None:
        return _pretrained(plugin.checkpoint), None
    if chain.ground_truth is None:
        raise InputError(
            run.source, "chain.ground_truth (or spot_s2_fusion.checkpoint) is required"
        )
    reference_dir = work / f"reference_seed_{job.seed}"
    prepared = prepare_reference(
        spot, chain.ground_truth, chain.data_field, reference_dir, block_m=plugin.split_block_m,
        seed=job.seed, mapping=plugin.mapping_table, nomenclature=nomenclature, s2_grid=grid,
        layer=plugin.reference_layer, holdout=_iota2_holdout(run, job, grid, nomenclature),
    )  # fmt: skip
    codes = (
        list(nomenclature.codes)
        if nomenclature
        else sorted(int(c) for c in np.unique(prepared.labels) if c)
    )
    checkpoint = work / "models" / f"fcn_seed_{job.seed}.pt"
    vector = iota2_validation(chain.output_path, job.tile, job.seed)
    provenance = {**(prepared.provenance or {}), "holdout": None if vector is None else str(vector)}
    with fp.retraining_on_other_data(checkpoint, prepared.labels, prepared.split, provenance):
        result = train(
            spot, prepared.labels, prepared.split, model_name="fcn", class_codes=codes,
            checkpoint_path=checkpoint, seed=job.seed,
            device=str(resolve_cfg_device(plugin.device, run.source)), **plugin.recipe("fcn"),
        )  # fmt: skip
    return result.checkpoint_path, reference_dir


def _pretrained(checkpoint: Path) -> Path:
    """A user's checkpoint, accepted only with the record of the split it was trained on.

    Raises:
        InputError: If the checkpoint has no ``data_fingerprint`` split record.
    """
    import logging

    from iota2_spot_s2.training import checkpoint_fingerprint as fp

    saved = fp.stored_fingerprint(checkpoint)
    if not fp.has_split_record(saved):
        raise InputError(
            checkpoint,
            "has no record of the labels/split it was trained on (older version or foreign "
            "file), so its weights may have seen test pixels: retrain it with fuse-classify "
            "train, or remove spot_s2_fusion.checkpoint to train on the tile",
        )
    logging.getLogger("iota2_spot_s2.iota2").info(
        "pretrained checkpoint %s: trained on %s (pixels %s)", checkpoint,
        saved.get("provenance"), saved.get("pixels"),
    )  # fmt: skip
    return checkpoint


def _iota2_holdout(
    run: RunConfig, job: TileJob, grid: Grid, nomenclature: Nomenclature | None
) -> np.ndarray | None:
    """Pixels of iota2's validation polygons for this tile and seed, if iota2 drew them."""
    vector = iota2_validation(run.chain.output_path, job.tile, job.seed)
    if vector is None:
        return None
    # every tile pixel a polygon touches: no SPOT pixel inside one may stay in training
    return validation_labels(run, vector, grid, nomenclature, all_touched=True) > 0


def validation_labels(
    run: RunConfig,
    vector: Path,
    grid: Grid,
    nomenclature: Nomenclature | None,
    *,
    all_touched: bool = False,
) -> np.ndarray:
    """iota2's validation polygons rasterized on ``grid`` (iota2 lower-cases the data field)."""
    from iota2_spot_s2.reference import rasterize_reference

    field = iota2_field(vector, run.chain.data_field) or run.chain.data_field
    return rasterize_reference(
        vector, grid, field, mapping=run.plugin.mapping_table, nomenclature=nomenclature,
        all_touched=all_touched,
    ).labels  # fmt: skip

"""The OSO-style land-cover product: class, confidence and validity rasters and a vector layer.

:func:`write_oso_product` turns a class map (and its confidence, and the number of cloud-free
Sentinel-2 dates per pixel) into what CESBIO's OSO product holds, on OSO's 23-class
nomenclature and colours. Files in ``out_dir`` (``<p>`` = ``prefix``, default ``oso``)::

    <p>_classes.tif + .qml        the class map (recoded to OSO codes if asked), COG
    <p>_classes_mmu.tif + .qml    the same regularised to the minimum mapping unit (MMU)
    <p>_confidence.tif            confidence 0-100 (255 no-data)
    <p>_validity.tif              cloud-free S2 dates per pixel (65535 no-data), if given
    <p>_vector.gpkg + .qml        one polygon per patch of the MMU map (layer ``<p>``),
                                  attributes in :mod:`iota2_spot_s2.product.vectorize`
    <p>_product.json              parameters and what the regularisation did (written last)

Regularisation (:mod:`iota2_spot_s2.product.regularize`): optional OTB majority filter of
``majority_radius`` pixels, then GDAL's sieve repeated until every patch holds at least
``ceil(mmu_ha * 10000 / pixel area)`` pixels (4-connectivity); islands below the MMU with no
classified neighbour become no-data. Polygons therefore all cover at least the MMU.

Atomicity: everything is written in a hidden folder inside ``out_dir`` and moved to the final
names only once all of it succeeded; on failure the folder is deleted and ``out_dir`` keeps no
partial product.
"""

from __future__ import annotations

import json
import os
import shutil
import time
import uuid
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from os import PathLike
from pathlib import Path
from typing import Any

import numpy as np
import rasterio

from iota2_spot_s2.grid import Grid
from iota2_spot_s2.nomenclature import Nomenclature
from iota2_spot_s2.product import rasters
from iota2_spot_s2.product.legend import oso_nomenclature
from iota2_spot_s2.product.regularize import (
    label_patches,
    majority_filter,
    mmu_pixels,
    sieve_to_mmu,
)
from iota2_spot_s2.product.style import store_default_style, vector_qml
from iota2_spot_s2.product.vectorize import attribute_columns, patch_statistics, write_polygons

DEFAULT_MMU_HA = 0.1


@dataclass(frozen=True)
class OsoProduct:
    """Paths of a written product (``validity`` None when no validity raster was given)."""

    classes: Path
    classes_mmu: Path
    confidence: Path
    validity: Path | None
    vector: Path
    report: Path


def write_oso_product(
    class_map: str | PathLike[str],
    confidence: str | PathLike[str],
    validity: str | PathLike[str] | None,
    out_dir: str | PathLike[str],
    *,
    mmu_ha: float = DEFAULT_MMU_HA,
    nomenclature: Nomenclature | None = None,
    recode: Mapping[int, int] | None = None,
    majority_radius: int | None = None,
    prefix: str = "oso",
) -> OsoProduct:
    """Write the OSO-style product of one class map (module docstring).

    Args:
        class_map: Class codes (0 or the file's no-data = no-data).
        confidence: Confidence on the same grid: integer 0-100 or float 0-1.
        validity: Cloud-free S2 dates per pixel, any grid (nearest onto the map's), or None.
        out_dir: Output folder (created).
        mmu_ha: Minimum mapping unit in hectares (0.1 ha = 1000 m2, OSO's vector product).
        nomenclature: Target classes and colours; default OSO's 23 classes.
        recode: ``{map code: OSO code}`` when the map is on another nomenclature.
        majority_radius: Radius in pixels of an OTB majority filter run before the sieve.
        prefix: File name prefix and layer name.

    Raises:
        InputError: Unreadable inputs, codes outside the nomenclature, grids that differ.

    """
    nom = nomenclature or oso_nomenclature()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    work = out / f".{prefix}.{uuid.uuid4().hex[:8]}.partial"
    work.mkdir()
    try:
        report = _build(Path(class_map), Path(confidence), validity, work, nom, recode,
                        mmu_ha, majority_radius, prefix)  # fmt: skip
        return _publish(work, out, report, prefix, validity is not None)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _build(
    class_map: Path, confidence: Path, validity: str | PathLike[str] | None, work: Path,
    nom: Nomenclature, recode: Mapping[int, int] | None, mmu_ha: float,
    majority_radius: int | None, prefix: str,
) -> dict[str, Any]:  # fmt: skip
    """Write every file into ``work``; return the product report."""
    start = time.perf_counter()
    codes, grid = rasters.read_class_map(class_map)
    if recode is not None:
        codes = rasters.recode_classes(codes, recode, class_map)
    original = rasters.check_codes(codes, nom, class_map)
    del codes
    rasters.write_class_raster(original, grid, work / f"{prefix}_classes.tif", nom)
    conf_path = rasters.write_confidence(confidence, grid, work / f"{prefix}_confidence.tif")
    val_path = None
    if validity is not None:
        val_path = rasters.write_validity(validity, grid, work / f"{prefix}_validity.tif")
    smoothed = original
    if majority_radius:
        smoothed = _majority(work / f"{prefix}_classes.tif", work, majority_radius)
    min_px = mmu_pixels(mmu_ha, grid.res)
    regular, sieve_report = sieve_to_mmu(smoothed, min_px)
    del smoothed
    rasters.write_class_raster(regular, grid, work / f"{prefix}_classes_mmu.tif", nom)
    n_polygons = _write_vector(work / f"{prefix}_vector.gpkg", original, regular, grid, nom,
                               conf_path, val_path, prefix)  # fmt: skip
    return {
        "nomenclature": {"codes": list(nom.codes), "names": list(nom.names)},
        "inputs": {"class_map": str(class_map), "confidence": str(confidence),
                   "validity": str(validity) if validity is not None else None,
                   "recoded": recode is not None},  # fmt: skip
        "mmu_ha": mmu_ha, "pixel_size_m": list(grid.res), "majority_radius": majority_radius,
        "regularization": asdict(sieve_report), "polygons": n_polygons,
        "classified_pixels": int(np.count_nonzero(original)),
        "classified_pixels_mmu": int(np.count_nonzero(regular)),
        "seconds": round(time.perf_counter() - start, 3),
    }  # fmt: skip


def _majority(classes_cog: Path, work: Path, radius: int) -> np.ndarray:
    smoothed_path = majority_filter(classes_cog, work / ".majority.tif", radius)
    with rasterio.open(smoothed_path) as src:
        data = src.read(1)
    smoothed_path.unlink()
    return data


def _write_vector(
    path: Path, original: np.ndarray, regular: np.ndarray, grid: Grid, nom: Nomenclature,
    conf_path: Path, val_path: Path | None, layer: str,
) -> int:  # fmt: skip
    labels, n = label_patches(regular)

    def read(top: int, stop: int) -> tuple[Any, Any, Any, Any]:
        return (original[top:stop], regular[top:stop], rasters.read_strip(conf_path, top, stop),
                rasters.read_strip(val_path, top, stop))  # fmt: skip

    stats = patch_statistics(labels, n, nom.codes, read)
    columns = attribute_columns(stats, nom, grid.res[0] * grid.res[1])
    if val_path is None:
        columns = {k: v for k, v in columns.items() if not k.startswith("validity")}
    written = write_polygons(path, labels, n, grid.transform, grid.crs, columns, layer)
    qml = vector_qml(nom)
    path.with_suffix(".qml").write_text(qml, encoding="utf-8")
    store_default_style(path, layer, qml)
    return written


def _publish(
    work: Path, out: Path, report: dict[str, Any], prefix: str, has_validity: bool
) -> OsoProduct:
    """Move the finished files from ``work`` to ``out``; the JSON report goes last."""
    report_name = f"{prefix}_product.json"
    (work / report_name).write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n",
                                    encoding="utf-8")  # fmt: skip
    names = sorted(p.name for p in work.iterdir() if not p.name.startswith("."))
    names.remove(report_name)
    for name in [*names, report_name]:
        os.replace(work / name, out / name)
    return OsoProduct(
        classes=out / f"{prefix}_classes.tif",
        classes_mmu=out / f"{prefix}_classes_mmu.tif",
        confidence=out / f"{prefix}_confidence.tif",
        validity=out / f"{prefix}_validity.tif" if has_validity else None,
        vector=out / f"{prefix}_vector.gpkg",
        report=out / report_name,
    )

"""A small iota2-shaped output tree on a seeded SIMULATED scene (the test fixture's generator).

What iota2 would leave after its classification step, in iota2's layout and formats:

    <root>/scene/                         simulated SPOT image, sensor_data/<TILE>/ (Theia L2A),
                                          reference.gpkg (ground truth), nomenclature, colours
    <root>/iota2_output/dataAppVal/<TILE>_seed_0_{learn,val}.sqlite   polygons split ~70/30,
                                          fields lower-cased (as iota2's vector formatting does)
    <root>/iota2_output/classif/Classif_<TILE>_model_1_seed_0.tif      uint8 codes, 0 nodata
    <root>/iota2_output/classif/<TILE>_model_1_confidence_seed_0.tif   float32 0-1
    <root>/iota2_output/classif/PROBAMAP_<TILE>_model_1_seed_0.tif     uint16 0-1000, code order
    <root>/iota2_output/model/model_1_seed_0.txt       OTB model head: class dictionary
    <root>/iota2_output/final/Classif_Seed_0.tif                       the one-tile mosaic
    <root>/run.cfg                        the iota2 cfg with the plugin section

iota2 is not installable here, so its classifier is stood in for by our Sentinel-2 random
forest, trained on the learn polygons only; the files are written here with rasterio, directly
in iota2's documented formats (not through the plugin's own writers).
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyogrio
import rasterio
from pyogrio.raw import read, write

from iota2_spot_s2.grid import Grid
from iota2_spot_s2.settings import format_cfg
from iota2_spot_s2.simulation import SceneInfo, generate_scene

TILE = "T31TCJ"


@dataclass(frozen=True)
class Iota2Tree:
    """Paths of the generated tree."""

    root: Path
    scene: SceneInfo
    output: Path
    cfg: Path
    codes: list[int]
    learn: Path
    val: Path


def split_polygons(reference: Path, out_dir: Path, seed: int) -> tuple[Path, Path]:
    """iota2-like learn / validation files: polygons drawn at random, ~70/30."""
    meta, _, geometry, values = read(reference)
    fields = [f.lower() for f in meta["fields"]]
    is_val = np.random.default_rng(seed).random(len(geometry)) < 0.3
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, keep in (("learn", ~is_val), ("val", is_val)):
        path = out_dir / f"{TILE}_seed_0_{name}.sqlite"
        path.unlink(missing_ok=True)  # a rebuild replaces the tree
        write(
            path, geometry[keep], [v[keep] for v in values], fields, driver="SQLite",
            geometry_type="Polygon", crs=meta["crs"],
        )  # fmt: skip
        paths.append(path)
    return paths[0], paths[1]


def write_iota2_classification(proba: np.ndarray, codes: list[int], grid: Grid, classif: Path):
    """Classif / confidence / PROBAMAP in iota2's formats from ``(K, H, W)`` probabilities."""
    valid = np.isfinite(proba).all(axis=0)
    p = np.nan_to_num(proba)
    labels = np.where(valid, np.asarray(codes)[p.argmax(axis=0)], 0).astype(np.uint8)
    files = {
        f"Classif_{TILE}_model_1_seed_0.tif": (labels[None], "uint8", 0),
        f"{TILE}_model_1_confidence_seed_0.tif": (
            np.where(valid, p.max(axis=0), 0)[None].astype(np.float32), "float32", None,
        ),
        f"PROBAMAP_{TILE}_model_1_seed_0.tif": (
            np.rint(p * 1000).astype(np.uint16), "uint16", None,
        ),
    }  # fmt: skip
    classif.mkdir(parents=True, exist_ok=True)
    for name, (array, dtype, nodata) in files.items():
        profile = grid.profile(driver="GTiff", count=array.shape[0], dtype=dtype, nodata=nodata)
        with rasterio.open(classif / name, "w", **profile) as dst:
            dst.write(array)


def build(root: Path, *, seed: int = 5, size_m: float = 240.0) -> Iota2Tree:
    """Write the tree under ``root``."""
    from iota2_spot_s2.reference import rasterize_reference, split_blocks
    from iota2_spot_s2.sensors import open_s2_timeseries
    from iota2_spot_s2.timeseries import s2_probabilities, train_s2_classifier

    scene = generate_scene(root / "scene", size_m=size_m, seed=seed, tile=TILE)
    output = root / "iota2_output"
    learn, val = split_polygons(scene.reference, output / "dataAppVal", seed)
    series = open_s2_timeseries(scene.sensor_data / TILE)
    labels = rasterize_reference(learn, scene.s2_grid, "code").labels
    split = split_blocks(labels, block_size=4, seed=seed)
    split[split == 3] = 1  # iota2 learns on every learn polygon
    codes = sorted(c.code for c in scene.classes)
    clf = train_s2_classifier(series, labels, split, kind="rf", class_codes=codes, seed=seed)
    write_iota2_classification(s2_probabilities(clf, series), codes, scene.s2_grid,
                               output / "classif")  # fmt: skip
    # the class dictionary OTB writes at the head of iota2's model file: the PROBAMAP band order
    (output / "model").mkdir(parents=True, exist_ok=True)
    (output / "model" / "model_1_seed_0.txt").write_text(
        f"#with_dictionary\n{len(codes)} {' '.join(map(str, codes))} \n"
    )
    (output / "final").mkdir(parents=True, exist_ok=True)
    shutil.copyfile(output / "classif" / f"Classif_{TILE}_model_1_seed_0.tif",
                    output / "final" / "Classif_Seed_0.tif")  # fmt: skip
    cfg = root / "run.cfg"
    cfg.write_text(format_cfg(_sections(scene, output)))
    assert pyogrio.read_info(val)["features"] > 0
    return Iota2Tree(root, scene, output, cfg, codes, learn, val)


def _sections(scene: SceneInfo, output: Path) -> dict[str, dict[str, object]]:
    return {
        "chain": {
            "output_path": str(output), "list_tile": TILE, "s2_path": str(scene.sensor_data),
            "ground_truth": str(scene.reference), "data_field": "code",
            "nomenclature_path": str(scene.nomenclature), "color_table": str(scene.color_file),
            "spatial_resolution": 10, "proj": "EPSG:2154",
        },
        "arg_train": {"runs": 1, "classifier": "sharkrf"},
        "arg_classification": {"enable_probability_map": True},
        "spot_s2_fusion": {
            "spot_images": {TILE: str(scene.spot_image)}, "split_block_m": 24.0,
            "tile_size": 64, "simulated": True,
            "training": {"epochs": 3, "iters_per_epoch": 3, "batch_size": 2, "crop": 64,
                         "schedule": "constant", "lr": 3e-3},
        },
    }  # fmt: skip

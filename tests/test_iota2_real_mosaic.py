"""iota2 2020's own mosaic (``classif/`` -> ``final/``) on a tree holding all of our files.

iota2's ``Validation/ClassificationShaping.classification_shaping`` runs in a subprocess
(``tests/iota2_mosaic_probe.py``), called as iota2's ``Steps/mosaic.py`` calls it. Its file
searches are iota2's own; only its GDAL/OTB raster commands are stand-ins (recorded, not run),
because OTB and GDAL's bindings cannot be installed here. The test then reads what iota2
collected (the ``-il`` lists of its ``otbcli_BandMath`` commands, the inputs of its
``assembleTile_Merge``) and applies the per-tile arithmetic iota2 asked for (the sum
``im1b1 + im2b1 + ...``) to the real files, to compare the tile of ``final/Classif_Seed_0.tif``
with iota2's map alone, or with the fused map when ``dempster_shafer_SAR_Opt_fusion`` is on.

The tree is ``tests/data/iota2_tree`` (SIMULATED scene, iota2's outputs written in its formats)
after the three routes (``step``, ``features``, ``fuse``), plus the ``features/<TILE>/tmp/
nbView.tif`` iota2's mosaic reads (a stand-in of iota2's own output, all ones).
"""

from __future__ import annotations

import json
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import rasterio

from iota2_spot_s2.errors import InputError
from tests.test_iota2_plugin import TILE, fuse_classify, tree_data

IOTA2_2020 = Path("/work/shared/iota2_2020")
CONFIG_04 = Path(__file__).resolve().parents[1] / ".venv" / "compat" / "config-0.4"
PROBE = Path(__file__).with_name("iota2_mosaic_probe.py")
pytestmark = pytest.mark.skipif(not IOTA2_2020.is_dir(), reason="no iota2 2020 source")

OWN = {  # iota2's own classification of the tile, seed 0
    "classes": f"classif/Classif_{TILE}_model_1_seed_0.tif",
    "confidence": f"classif/{TILE}_model_1_confidence_seed_0.tif",
    "proba": f"classif/PROBAMAP_{TILE}_model_1_seed_0.tif",
}
FUSED = {kind: path.replace(".tif", "_DS.tif") for kind, path in OWN.items()}


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory):
    built = tree_data.build(tmp_path_factory.mktemp("mosaic"))
    nb_view = built.output / "features" / TILE / "tmp" / "nbView.tif"
    nb_view.parent.mkdir(parents=True)
    grid = built.scene.s2_grid
    with rasterio.open(nb_view, "w", **grid.profile(driver="GTiff", count=1, dtype="uint8")) as d:
        d.write(np.ones((1, grid.height, grid.width), np.uint8))
    for route in ("step", "features", "fuse"):
        done = fuse_classify("iota2", route, str(built.cfg))
        assert done.returncode == 0, done.stderr[-3000:]
    return built


def _ds_cfg(tree) -> Path:
    """The tree's cfg with iota2's ``argTrain.dempster_shafer_SAR_Opt_fusion : True``."""
    text = tree.cfg.read_text()
    cfg = tree.cfg.with_name("run_ds.cfg")
    flag = "arg_train : { dempster_shafer_SAR_Opt_fusion : True "
    cfg.write_text(re.sub(r"arg_train\s*:\s*\{", flag, text, count=1))
    return cfg


def _mosaic(tree, ds: bool) -> dict:
    """Run iota2's mosaic function; what it summed, used as confidence and as PROBAMAPs."""
    shutil.rmtree(tree.output / "final" / "TMP", ignore_errors=True)
    args = [str(IOTA2_2020), str(CONFIG_04), str(tree.output), str(tree.scene.nomenclature),
            str(tree.scene.color_file), str(ds)]  # fmt: skip
    done = subprocess.run([sys.executable, str(PROBE), *args], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    record = json.loads(done.stdout.strip().splitlines()[-1])
    bandmath = [shlex.split(c) for c in record["otb"] if c.startswith("otbcli_BandMath")]
    inputs = {w[w.index("-exp") + 1]: w[w.index("-il") + 1 : w.index("-out")] for w in bandmath}
    summed = [v for k, v in inputs.items() if k.startswith("im1b1") and "?" not in k]
    confidence = [v for k, v in inputs.items() if k == "100*im1b1"]
    probamaps = [m[0] for m in record["merge"] if "ProbabilityMap_seed_0" in m[1]]
    assert len(summed) == len(confidence) == len(probamaps) == 1, record
    return {"classes": summed[0], "confidence": confidence[0], "proba": probamaps[0]}


def _relative(tree, paths: list[str]) -> list[str]:
    return sorted(str(Path(p).resolve().relative_to(tree.output.resolve())) for p in paths)


def _read(path: Path | str) -> np.ndarray:
    with rasterio.open(path) as src:
        return src.read(1).astype(np.int64)


def test_iota2_mosaics_only_its_own_files_next_to_all_of_ours(tree) -> None:
    ours = [p for p in (tree.output / "spot_s2").rglob("*.tif")]
    assert any(p.name.endswith("_SPOT.tif") for p in ours)
    assert any(p.name.endswith("_DS.tif") for p in ours)  # fused, no DS flag: kept aside
    collected = _mosaic(tree, ds=False)
    assert {k: _relative(tree, v) for k, v in collected.items()} == {k: [v] for k, v in OWN.items()}
    final_tile = sum(_read(p) for p in collected["classes"])  # iota2's "im1b1 + im2b1 + ..."
    np.testing.assert_array_equal(final_tile, _read(tree.output / OWN["classes"]))


def test_with_iota2s_ds_flag_the_fused_map_replaces_iota2s_own_in_final(tree) -> None:
    done = fuse_classify("iota2", "fuse", str(_ds_cfg(tree)))
    assert done.returncode == 0, done.stderr[-3000:]
    choice = tree.output / "final" / "TMP" / f"DSchoice_{TILE}_model_1_seed_0.tif"
    assert choice.is_file()
    collected = _mosaic(tree, ds=True)
    assert {k: _relative(tree, v) for k, v in collected.items()} == {
        k: [v] for k, v in FUSED.items()
    }
    final_tile = sum(_read(p) for p in collected["classes"])
    np.testing.assert_array_equal(final_tile, _read(tree.output / FUSED["classes"]))
    assert (final_tile != _read(tree.output / OWN["classes"])).any()  # the fusion changed it
    # back to a cfg without the flag: our _DS files leave classif/, final/ is iota2's again
    done = fuse_classify("iota2", "fuse", str(tree.cfg))
    assert done.returncode == 0, done.stderr[-3000:]
    assert not (tree.output / FUSED["classes"]).exists()
    collected = _mosaic(tree, ds=False)
    assert _relative(tree, collected["classes"]) == [OWN["classes"]]


def test_iota2s_own_ds_files_are_never_overwritten(tree, tmp_path: Path) -> None:
    from iota2_spot_s2.iota2.classify import TileJob
    from iota2_spot_s2.iota2.decision import fuse_tile
    from iota2_spot_s2.settings import load_config

    sar_opt = tree.output / FUSED["classes"]
    shutil.copyfile(tree.output / OWN["classes"], sar_opt)  # as iota2's SAR/optical fusion
    try:
        with pytest.raises(InputError, match="SAR/optical fusion: not overwritten"):
            fuse_tile(load_config(_ds_cfg(tree)), TileJob(TILE, 0), rule="vote")
        fuse_tile(load_config(tree.cfg), TileJob(TILE, 0), rule="vote")  # elsewhere: fine
        assert sar_opt.is_file()  # and iota2's file is left alone
    finally:
        sar_opt.unlink()


def _model_file(tree, classes: list[int], name: str = "model_1_seed_0.txt") -> Path:
    """An OTB Shark model header as iota2 reads it (``with_dictionary``, count then codes)."""
    path = tree.output / "model" / name
    path.parent.mkdir(exist_ok=True)
    path.write_text(f"#with_dictionary\n{len(classes)} {' '.join(map(str, classes))} \n...\n")
    return path


def test_probamap_bands_follow_iota2s_class_order_never_the_band_count(tree) -> None:
    from iota2_spot_s2.iota2.classify import TileJob
    from iota2_spot_s2.iota2.decision import fuse_tile, iota2_class_order
    from iota2_spot_s2.settings import load_config

    run, job, codes = load_config(tree.cfg), TileJob(TILE, 0), tree.codes
    with rasterio.open(tree.output / OWN["proba"]) as src:
        assert src.count == len(codes)
    # the same number of classes, another set: never fused band for band
    other = [*codes[:-1], max(codes) + 1]
    try:
        _model_file(tree, other[:2], "model_1_seed_1.txt")
        _model_file(tree, other[2:][::-1])  # union over models and seeds, sorted
        assert iota2_class_order(tree.output, "code")[0] == other
        with pytest.raises(InputError, match=rf"classes \[{max(codes) + 1}\] are not among"):
            fuse_tile(run, job, rule="mean")
        _model_file(tree, codes[:-1])  # fewer classes than bands: refused, not guessed
        (tree.output / "model" / "model_1_seed_1.txt").unlink()
        with pytest.raises(InputError, match="which class each of its"):
            fuse_tile(run, job, rule="mean")
        _model_file(tree, codes[::-1])  # iota2's real order: used as is
        assert fuse_tile(run, job, rule="mean").iota2_source == "PROBAMAP"
    finally:
        shutil.rmtree(tree.output / "model", ignore_errors=True)
    learn = tree.learn.rename(tree.learn.with_suffix(".aside"))  # nothing tells the order
    try:
        assert iota2_class_order(tree.output, "code")[0] is None
        with pytest.raises(InputError, match="which class each of its"):
            fuse_tile(run, job, rule="mean")
        assert fuse_tile(run, job, rule="vote").iota2_source == "class map"  # needs no order
    finally:
        learn.rename(tree.learn)

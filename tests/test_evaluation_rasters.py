"""Raster evaluation, checked against OTB's ComputeConfusionMatrix on real GeoTIFFs."""

from __future__ import annotations

import os
import shutil

import numpy as np
import pytest
from affine import Affine

from iota2_spot_s2.errors import InputError
from iota2_spot_s2.evaluation import (
    accumulate_rasters,
    confusion_matrix,
    evaluate_rasters,
    read_otb_confusion_csv,
    write_otb_confusion_csv,
)
from iota2_spot_s2.otb import run_app
from tests.rasters import write_band

CODES = [1, 2, 5, 7, 9, 12]
SIZE = 64


@pytest.fixture
def need_otb_cli():
    """The OTB launcher; fails under CI=true when missing, skips otherwise."""
    exe = shutil.which("otbcli_ComputeConfusionMatrix")
    if exe is None:
        message = "otbcli_ComputeConfusionMatrix not on PATH (install Debian's otb-bin)"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message)
        pytest.skip(message)
    return exe


def _origin(x: float, y: float) -> Affine:
    return Affine(10.0, 0.0, x, 0.0, -10.0, y)


def _write(path, array, nodata=None, transform=None):
    return write_band(path, array, nodata, transform=transform or _origin(650000.0, 6860000.0))


@pytest.fixture
def scene(tmp_path):
    rng = np.random.default_rng(42)
    # class 12 never appears in the reference; class 9 never in the map; 0 = no-data in both
    ref = rng.choice([0, 1, 2, 5, 7, 9], size=(SIZE, SIZE), p=[0.2, 0.3, 0.2, 0.1, 0.1, 0.1])
    ref = ref.astype(np.uint8)
    noise = rng.choice([1, 2, 5, 7, 12, 0], size=(SIZE, SIZE))
    prod = np.where(rng.random((SIZE, SIZE)) < 0.7, ref, noise)
    prod = np.where(prod == 9, 7, prod).astype(np.uint8)
    prod[ref == 0] = rng.choice([1, 2], size=int((ref == 0).sum()))
    split = rng.choice([0, 1, 2, 3], size=(SIZE, SIZE)).astype(np.uint8)
    return {
        "ref": ref,
        "prod": prod,
        "split": split,
        "ref_path": _write(tmp_path / "reference.tif", ref, nodata=0),
        "prod_path": _write(tmp_path / "map.tif", prod, nodata=0),
        "split_path": _write(tmp_path / "split.tif", split, nodata=0),
    }


def _otb_matrix(scene, tmp_path):
    out = tmp_path / "otb_cm.csv"
    run_app(
        "ComputeConfusionMatrix",
        in_=scene["prod_path"],
        out=out,
        ref="raster",
        ref__raster__in=scene["ref_path"],
        ref__raster__nodata=0,
        nodatalabel=0,
    )
    return out, read_otb_confusion_csv(out)


def test_matches_otb_compute_confusion_matrix(scene, tmp_path, need_otb_cli):
    _, (ref_codes, prod_codes, otb) = _otb_matrix(scene, tmp_path)
    # OTB lists only labels present, in increasing order
    assert ref_codes == [1, 2, 5, 7, 9]
    assert prod_codes == [1, 2, 5, 7, 12]
    ours = evaluate_rasters(scene["ref_path"], scene["prod_path"], CODES, window_size=24)
    position = {c: i for i, c in enumerate(CODES)}
    for i, rc in enumerate(ref_codes):
        for j, pc in enumerate(prod_codes):
            assert ours[position[rc], position[pc]] == otb[i, j], (rc, pc)
    assert ours.sum() == otb.sum()
    # and OTB agrees with the in-memory computation, excluding produced no-data as OTB does
    valid = (scene["ref"] != 0) & (scene["prod"] != 0)
    assert otb.sum() == int(valid.sum())


def test_our_csv_has_otb_layout(scene, tmp_path, need_otb_cli):
    otb_path, (ref_codes, prod_codes, otb) = _otb_matrix(scene, tmp_path)
    ours_path = tmp_path / "ours.csv"
    write_otb_confusion_csv(otb, ref_codes, ours_path, prod_codes=prod_codes)
    assert ours_path.read_text() == otb_path.read_text()  # byte-identical on OTB's own labels
    cm = evaluate_rasters(scene["ref_path"], scene["prod_path"], CODES)
    write_otb_confusion_csv(cm, CODES, ours_path)
    ours_lines = ours_path.read_text().splitlines()
    otb_lines = otb_path.read_text().splitlines()
    for ours_line, otb_line in zip(ours_lines[:2], otb_lines[:2], strict=True):
        assert ours_line.split(":")[0] == otb_line.split(":")[0]
    got_ref, got_prod, got = read_otb_confusion_csv(ours_path)
    assert got_ref == got_prod == CODES
    np.testing.assert_array_equal(got, cm)


def test_evaluate_rasters_with_split_mask(scene):
    ref, prod, split = scene["ref"], scene["prod"], scene["split"]
    test = split == 3
    expected = confusion_matrix(np.where(test, ref, 0), prod, CODES)
    got_path = evaluate_rasters(
        scene["ref_path"],
        scene["prod_path"],
        CODES,
        mask=scene["split_path"],
        mask_values=[3],
        window_size=17,
    )
    got_array = evaluate_rasters(
        scene["ref_path"], scene["prod_path"], CODES, mask=split, mask_values=[3]
    )
    np.testing.assert_array_equal(got_path, expected)
    np.testing.assert_array_equal(got_array, expected)
    # independent count of one cell
    assert got_path[CODES.index(2), CODES.index(2)] == int((test & (ref == 2) & (prod == 2)).sum())
    any_split = evaluate_rasters(scene["ref_path"], scene["prod_path"], CODES, mask=split)
    assert any_split.sum() == int(((split != 0) & (ref != 0) & (prod != 0)).sum())


def test_accumulate_rasters_counts_unmapped(scene):
    acc = accumulate_rasters(scene["ref_path"], scene["prod_path"], CODES)
    ref, prod = scene["ref"], scene["prod"]
    for k, code in enumerate(CODES):
        assert acc.unmapped_produced[k] == int(((ref == code) & (prod == 0)).sum())


def test_reference_nodata_other_than_zero(tmp_path):
    ref = np.array([[1, 255], [2, 2]], dtype=np.uint8)
    prod = np.array([[1, 1], [2, 1]], dtype=np.uint8)
    r = _write(tmp_path / "r.tif", ref, nodata=255)
    p = _write(tmp_path / "p.tif", prod)
    assert evaluate_rasters(r, p, [1, 2]).tolist() == [[1, 0], [1, 1]]


def test_grid_mismatch_is_input_error(scene, tmp_path):
    shifted = _write(
        tmp_path / "shifted.tif", scene["prod"], transform=_origin(650010.0, 6860000.0)
    )
    with pytest.raises(InputError, match="transform"):
        evaluate_rasters(scene["ref_path"], shifted, CODES)
    small = _write(tmp_path / "small.tif", scene["prod"][:32])
    with pytest.raises(InputError, match="align"):
        evaluate_rasters(scene["ref_path"], small, CODES)
    with pytest.raises(InputError, match="cannot be read"):
        evaluate_rasters(scene["ref_path"], tmp_path / "missing.tif", CODES)

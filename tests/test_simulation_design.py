"""The simulated classes behave as designed, measured on the generated files.

- "s2" classes (crops): alike on the SPOT date, different Sentinel-2 NDVI curves;
- "spot" classes: alike in spectrum (buildings/roads/parking; hedges/forest), different shapes,
  confused by a per-pixel classifier on Sentinel-2 and separated with SPOT spatial context;
- "either" classes: easy for both.
"""

from __future__ import annotations

from itertools import combinations

import numpy as np
import pyogrio
import pytest
import shapely
from rasterio import features
from scipy import ndimage
from sklearn.discriminant_analysis import LinearDiscriminantAnalysis
from sklearn.metrics import f1_score

from iota2_spot_s2.sensors import open_s2_timeseries, open_spot
from iota2_spot_s2.simulation import SceneInfo, generate_scene


@pytest.fixture(scope="module")
def scene(tmp_path_factory: pytest.TempPathFactory) -> SceneInfo:
    return generate_scene(tmp_path_factory.mktemp("design"), size_m=480, seed=0)


@pytest.fixture(scope="module")
def data(scene: SceneInfo) -> dict[str, np.ndarray]:
    _, _, wkb, (codes,) = pyogrio.raw.read(scene.reference, columns=["code"])
    geoms = shapely.from_wkb(wkb)
    s2 = open_s2_timeseries(scene.sensor_data / scene.tile)

    def labels(grid):  # noqa: ANN001, ANN202
        return features.rasterize(
            zip(geoms, codes, strict=True),
            out_shape=grid.shape,
            transform=grid.transform,
            dtype="uint16",
        )

    return {
        "codes": codes,
        "geoms": geoms,
        "spot": open_spot(scene.spot_image).values,
        "spot_labels": labels(scene.spot_grid),
        "s2": s2.values,
        "valid": s2.valid.values,
        "s2_labels": labels(scene.s2_grid),
    }


def _group(scene: SceneInfo, needs: str) -> list[int]:
    return scene.codes_needing(needs)


def _separation(image: np.ndarray, labels: np.ndarray, a: int, b: int) -> float:
    """Largest per-band |mean difference| in units of the pooled within-class std."""
    pa, pb = image[:, labels == a], image[:, labels == b]
    pooled = np.sqrt((pa.var(axis=1) + pb.var(axis=1)) / 2)
    return float(np.max(np.abs(pa.mean(axis=1) - pb.mean(axis=1)) / pooled))


def test_phenology_classes_look_alike_on_the_spot_date(scene: SceneInfo, data: dict) -> None:
    crops = _group(scene, "s2")
    assert len(crops) >= 2
    for a, b in combinations(crops, 2):
        assert _separation(data["spot"], data["spot_labels"], a, b) < 1.0, (a, b)


def test_phenology_classes_differ_in_sentinel2_ndvi(scene: SceneInfo, data: dict) -> None:
    s2, lab = data["s2"], data["s2_labels"]
    red, nir = s2[:, 2], s2[:, 6]  # B4, B8
    ndvi = np.where(data["valid"][:, 2] & data["valid"][:, 6], (nir - red) / (nir + red), np.nan)
    curves = {c: np.nanmean(ndvi[:, lab == c], axis=1) for c in _group(scene, "s2")}
    for a, b in combinations(curves, 2):
        assert np.nanmax(np.abs(curves[a] - curves[b])) > 0.25, (a, b)
    by_name = {c.name: c.code for c in scene.classes}
    cereal, maize = curves[by_name["winter_cereal"]], curves[by_name["maize"]]
    assert np.nanargmax(cereal) < np.nanargmax(maize)  # cereal peaks in spring, maize in summer


def test_spot_only_classes_share_spectra_but_not_shapes(scene: SceneInfo, data: dict) -> None:
    by_name = {c.name: c.code for c in scene.classes}
    for group in (("building", "road", "parking"), ("hedge", "forest")):
        for a, b in combinations(group, 2):
            sep = _separation(data["spot"], data["spot_labels"], by_name[a], by_name[b])
            assert sep < 1.0, (a, b)
    geoms, codes = data["geoms"], data["codes"]

    def of(name: str) -> np.ndarray:
        return geoms[codes == by_name[name]]

    def width(g: np.ndarray) -> float:
        return float(np.median(2 * shapely.area(g) / shapely.length(g)))

    def elongation(g: np.ndarray) -> float:
        sides = [
            np.hypot(
                *np.diff(np.asarray(shapely.oriented_envelope(p).exterior.coords)[:3], axis=0).T
            )
            for p in g
        ]
        return float(np.median([s.max() / s.min() for s in sides]))

    assert width(of("hedge")) < 6.0 < 25.0 < width(of("forest"))
    assert elongation(of("road")) > 3 * elongation(of("building"))
    assert elongation(of("hedge")) > 3 * elongation(of("forest"))
    assert np.median(shapely.area(of("parking"))) > 3 * np.median(shapely.area(of("building")))


def _f1_per_class(features_: np.ndarray, labels: np.ndarray, codes: list[int]) -> dict[int, float]:
    """Per-class F1 of an LDA trained on half of the labelled pixels, tested on the other half."""
    pixels = np.flatnonzero(labels.ravel() > 0)
    pixels = np.random.default_rng(0).permutation(pixels)[:60000]
    x = features_.reshape(features_.shape[0], -1)[:, pixels].T
    y = labels.ravel()[pixels]
    model = LinearDiscriminantAnalysis().fit(x[::2], y[::2])
    scores = f1_score(y[1::2], model.predict(x[1::2]), labels=codes, average=None)
    return dict(zip(codes, scores, strict=True))


def test_each_sensor_separates_its_own_classes(scene: SceneInfo, data: dict) -> None:
    spot, lab = data["spot"], data["spot_labels"]
    rows = ((np.arange(lab.shape[0]) + 0.5) * 1.5 // 10).astype(int)
    cols = ((np.arange(lab.shape[1]) + 0.5) * 1.5 // 10).astype(int)
    s2 = np.nan_to_num(data["s2"].reshape(-1, *data["s2"].shape[2:]))[:, rows][:, :, cols]
    means = [ndimage.uniform_filter(spot, (0, k, k)) for k in (5, 15, 41)]
    stds = [
        np.sqrt(np.maximum(ndimage.uniform_filter(spot**2, (0, k, k)) - m**2, 0))
        for k, m in zip((5, 15), means, strict=False)
    ]
    spot_context = np.concatenate([spot, *means, *stds])
    codes = scene.codes
    f1_s2 = _f1_per_class(s2, lab, codes)
    f1_spot = _f1_per_class(spot_context, lab, codes)
    crops, details = _group(scene, "s2"), _group(scene, "spot")
    assert min(f1_s2[c] for c in crops) > 0.85
    assert np.mean([f1_spot[c] for c in crops]) < 0.65
    assert np.mean([f1_s2[c] for c in details]) < 0.8
    assert np.mean([f1_spot[c] for c in details]) > np.mean([f1_s2[c] for c in details]) + 0.1
    hedge = next(c.code for c in scene.classes if c.name == "hedge")
    assert f1_s2[hedge] < 0.65 < 0.85 < f1_spot[hedge]
    for easy in _group(scene, "either"):
        assert min(f1_s2[easy], f1_spot[easy]) > 0.9

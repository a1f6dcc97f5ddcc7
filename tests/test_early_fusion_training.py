"""Early-fusion training: grid pairing, S2 preparation, paired crops, learning, resume."""

from __future__ import annotations

from fractions import Fraction

import dask.array as dsk
import numpy as np
import pytest
import torch
import xarray as xr
from affine import Affine

from iota2_spot_s2.errors import InputError
from iota2_spot_s2.evaluation import confusion_matrix, scores
from iota2_spot_s2.reference import TEST, TRAIN, rasterize_reference, split_blocks
from iota2_spot_s2.sensors import open_s2_timeseries, open_spot
from iota2_spot_s2.simulation import generate_scene
from iota2_spot_s2.simulation.classes import CEREAL, MAIZE, MEADOW
from iota2_spot_s2.training import load_model, read_checkpoint, train
from iota2_spot_s2.training.paired import (
    LoadedEarlyFusion,
    load_early_fusion,
    train_early_fusion,
)
from iota2_spot_s2.training.paired_data import (
    PairedCropSampler,
    PairGeometry,
    S2Windows,
    crop_to_spot,
    prepare_s2_series,
    s2_train_split,
)
from iota2_spot_s2.training.sampling import IGNORE_INDEX, CropSampler, ImageSource, code_lookup

TINY = {"widths": (8, 16, 24), "bottleneck_blocks": 1, "s2_features": 8, "s2_hidden": 8}
SPOT_T = Affine(1.5, 0.0, 500_000.0, 0.0, -1.5, 6_300_480.0)
S2_T = Affine(10.0, 0.0, 500_000.0, 0.0, -10.0, 6_300_480.0)


@pytest.fixture(autouse=True)
def _one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def make_scene(root, seed: int = 0):
    """Simulated 480 m scene: SPOT 320 x 320 px, S2 48 x 48 px x 12 dates, 120 m blocks."""
    info = generate_scene(root, size_m=480, seed=seed)
    spot = open_spot(info.spot_image)
    series = open_s2_timeseries(info.sensor_data / info.tile)
    labels = rasterize_reference(info.reference, info.spot_grid, "code").labels
    split = split_blocks(labels, block_size=80, seed=seed)
    return info, spot, series, labels, split


@pytest.fixture(scope="module")
def scene(tmp_path_factory):
    return make_scene(tmp_path_factory.mktemp("scene"), seed=0)


def window_bounds(transform: Affine, row: int, col: int, height: int, width: int):
    left, top = transform @ (col, row)
    right, bottom = transform @ (col + width, row + height)
    return np.array([left, bottom, right, top])


def test_geometry_pairs_the_simulated_grids_on_the_same_ground(scene) -> None:
    info, spot, series, *_ = scene
    geometry = PairGeometry.from_inputs(spot, series)
    assert geometry == PairGeometry(Fraction(20, 3), 0, 0)
    rng = np.random.default_rng(0)
    for _ in range(20):
        row, col = (int(v) * 20 for v in rng.integers(-3, 16, 2))
        height, width = (int(v) * 20 for v in rng.integers(1, 8, 2))
        s2_window = geometry.s2_window(row, col, height, width)
        np.testing.assert_allclose(
            window_bounds(info.spot_grid.transform, row, col, height, width),
            window_bounds(info.s2_grid.transform, *s2_window),
        )
    with pytest.raises(ValueError):
        geometry.s2_window(10, 0, 40, 40)  # 15 m: not on the 10 m grid


def test_geometry_offsets_and_misaligned_grids() -> None:
    shifted = SPOT_T @ Affine.translation(40, 20)  # SPOT origin 60 m east, 30 m south
    geometry = PairGeometry.from_grids(("EPSG:2154", shifted), ("EPSG:2154", S2_T))
    assert (geometry.row_offset, geometry.col_offset) == (3, 6)
    assert geometry.s2_window(0, 0, 40, 40) == (3, 6, 6, 6)
    with pytest.raises(InputError, match="corner"):
        PairGeometry.from_grids(
            ("EPSG:2154", SPOT_T @ Affine.translation(1, 0)), ("EPSG:2154", S2_T)
        )
    with pytest.raises(InputError, match="CRS"):
        PairGeometry.from_grids(("EPSG:2154", SPOT_T), ("EPSG:32631", S2_T))
    with pytest.raises(InputError):
        PairGeometry.from_grids(("EPSG:2154", Affine(1.37, 0, 0, 0, -1.37, 0)), ("EPSG:2154", S2_T))


def test_a_larger_s2_series_is_cropped_to_the_spot_scene(scene) -> None:
    info, spot, series, *_ = scene
    part = spot.isel(y=slice(40, 200), x=slice(80, 280)).copy()
    part.attrs["transform"] = tuple(info.spot_grid.transform @ Affine.translation(80, 40))[:6]
    geometry = PairGeometry.from_inputs(part, series)
    assert (geometry.row_offset, geometry.col_offset) == (6, 12)
    cropped, inner = crop_to_spot(series, geometry, (160, 200))
    assert cropped.shape[-2:] == (24, 30) and (inner.row_offset, inner.col_offset) == (0, 0)
    assert PairGeometry.from_inputs(part, cropped) == inner
    np.testing.assert_array_equal(cropped.values, series.values[..., 6:30, 12:42])
    np.testing.assert_allclose(
        window_bounds(Affine(*part.attrs["transform"]), 0, 0, 160, 200),
        window_bounds(Affine(*cropped.attrs["transform"]), 0, 0, 24, 30),
    )


def test_s2_train_split_marks_s2_pixels_holding_train_pixel_centres() -> None:
    rng = np.random.default_rng(1)
    split = rng.choice([0, TRAIN, 2], size=(60, 80), p=[0.6, 0.2, 0.2]).astype(np.uint8)
    out = s2_train_split(split, PairGeometry(Fraction(20, 3)), (9, 12))
    expected = np.zeros((9, 12), np.uint8)
    for r, c in zip(*np.nonzero(split == TRAIN), strict=True):
        expected[int((r + 0.5) * 1.5 // 10), int((c + 0.5) * 1.5 // 10)] = TRAIN
    np.testing.assert_array_equal(out, expected)


def test_prepare_s2_series_gapfills_masked_values_lazily() -> None:
    times = np.array(["2021-01-01", "2021-01-21", "2021-02-10"], dtype="datetime64[ns]")
    values = np.stack([np.full((2, 3, 4), v, np.float32) for v in (0.1, 9.9, 0.3)])
    valid = np.ones(values.shape, bool)
    valid[1] = False  # the 9.9 date is cloudy everywhere
    coords = {"time": times, "band": ["B2", "B8"], "valid": (("time", "band", "y", "x"), valid)}
    eager = xr.DataArray(values, dims=("time", "band", "y", "x"), coords=coords)
    out = prepare_s2_series(eager)
    assert out.dims == ("feature", "y", "x") and out.shape == (5 * 2, 3, 4)  # 10-day grid
    assert out.attrs["s2_dates"] == ["20210101", "20210111", "20210121", "20210131", "20210210"]
    np.testing.assert_allclose(out.values[::2, 0, 0], [0.1, 0.15, 0.2, 0.25, 0.3], rtol=1e-6)
    lazy = eager.copy(data=dsk.from_array(values, chunks=(1, 2, 2, 2)))
    lazy.coords["valid"] = (("time", "band", "y", "x"), dsk.from_array(valid, chunks=2))
    stacked = prepare_s2_series(lazy)
    assert isinstance(stacked.data, dsk.Array)
    np.testing.assert_allclose(stacked.values, out.values)


def coordinate_pair(height: int = 160, width: int = 200):
    """SPOT and S2 arrays whose values are the map coordinates of their pixel centres."""
    cols, rows = np.meshgrid(np.arange(width) + 0.5, np.arange(height) + 0.5)
    spot = np.stack(SPOT_T @ (cols, rows)).astype(np.float64)
    cols2, rows2 = np.meshgrid(np.arange(width * 3 // 20) + 0.5, np.arange(height * 3 // 20) + 0.5)
    s2 = np.stack(S2_T @ (cols2, rows2)).astype(np.float64)
    return spot, s2


def test_paired_crops_cover_the_same_ground_with_consistent_augmentation() -> None:
    spot, s2 = coordinate_pair()
    offset = np.array([500_000.0, 6_300_000.0]).reshape(2, 1, 1)  # keep float32 precise
    labels = (1 + (spot[0] // 30 % 2) + 2 * (spot[1] // 45 % 2)).astype(np.uint16)
    split = np.zeros(labels.shape, np.uint8)
    split[40:-40, 40:-40] = TRAIN  # crops around TRAIN pixels stay inside the image
    geometry = PairGeometry(Fraction(20, 3))
    zeros, ones = np.zeros(2, np.float32), np.ones(2, np.float32)
    base = CropSampler(ImageSource((spot - offset).astype(np.float32)), labels, split,
                       code_lookup([1, 2, 3, 4], 4), zeros, ones, crop=40)  # fmt: skip
    windows = S2Windows(ImageSource((s2 - offset).astype(np.float32)), geometry, zeros, ones)
    sampler = PairedCropSampler.from_sampler(base, windows, s2_dropout=0.0)
    rng = np.random.default_rng(0)
    x, x2, valid, target = sampler.batch_pairs(16, rng)
    assert x.shape == (16, 2, 40, 40) and x2.shape == (16, 2, 6, 6) and valid.all()
    idx = (2 * np.arange(40) + 1) * 3 // 40  # S2 pixel holding each SPOT pixel centre
    for a, b, t in zip(x, x2, target, strict=True):
        # same ground: the S2 pixel at the mapped position holds the SPOT pixel centre
        under = b[:, idx][:, :, idx]
        assert np.abs(a - under).max() <= 5.0
        # the crop starts on the 10 m (and 30 m) grid and covers exactly the S2 window
        spot_bounds = [a[0].min() - 0.75, a[1].min() - 0.75, a[0].max() + 0.75, a[1].max() + 0.75]
        s2_bounds = [b[0].min() - 5, b[1].min() - 5, b[0].max() + 5, b[1].max() + 5]
        np.testing.assert_allclose(spot_bounds, s2_bounds, atol=1e-2)
        assert abs(spot_bounds[0] / 30 - round(spot_bounds[0] / 30)) < 1e-6
        # targets follow the pixels they label (non-TRAIN pixels are ignored)
        xs, ys = a[0].astype(np.float64) + 500_000.0, a[1].astype(np.float64) + 6_300_000.0
        expected = (xs // 30 % 2) + 2 * (ys // 45 % 2)
        train = t != IGNORE_INDEX
        assert train.mean() > 0.2
        np.testing.assert_array_equal(t[train], expected[train])
    sampler.s2_dropout = 1.0
    assert not sampler.batch_pairs(4, rng)[2].any()


def tiny_train(scene, path, **kwargs):
    _, spot, series, labels, split = scene
    # max_steps fixes the cosine schedule's length whatever `epochs` a call asks for
    options = dict(checkpoint_path=path, epochs=2, iters_per_epoch=3, batch_size=2, crop=40,
                   model_kwargs=TINY, val_tile=80, val_max_tiles=4, seed=3,
                   max_steps=1000)  # fmt: skip
    return train_early_fusion(spot, series, labels, split, **{**options, **kwargs})


def test_resume_continues_bit_identically_and_checkpoint_loads(scene, tmp_path) -> None:
    straight = tiny_train(scene, tmp_path / "a.pt", epochs=3)
    tiny_train(scene, tmp_path / "b.pt", epochs=2)
    resumed = tiny_train(scene, tmp_path / "b.pt", epochs=3)

    def scores_of(history):
        timing = ("seconds", "elapsed", "val_seconds")
        return [{k: v for k, v in h.items() if k not in timing} for h in history]

    assert len(resumed.history) == 3
    assert scores_of(resumed.history) == scores_of(straight.history)
    a, b = read_checkpoint(tmp_path / "a.pt"), read_checkpoint(tmp_path / "b.pt")
    for key, tensor in a["state_dict"].items():
        assert torch.equal(tensor, b["state_dict"][key]), key
    assert len(a["s2_mean"]) == 33 * 10 and a["model_kwargs"]["ratio"] == "20/3"
    assert a["s2_layout"]["dates"][0] == "20210122" and a["config"]["s2_dropout"] == 0.1
    loaded = load_early_fusion(tmp_path / "a.pt")
    assert isinstance(loaded, LoadedEarlyFusion) and loaded.ratio == Fraction(20, 3)
    assert load_model(tmp_path / "a.pt").model_name == "early_fusion"
    with pytest.raises(InputError, match="cannot resume"):
        tiny_train(scene, tmp_path / "a.pt", epochs=4, gapfill=False)  # 12 dates, not 33


def crop_scores(proba: np.ndarray, codes: list[int], labels, split) -> tuple[float, ...]:
    cm = confusion_matrix(np.where(split == TEST, labels, 0), np.asarray(codes)[proba.argmax(0)],
                          codes)  # fmt: skip
    return scores(cm, codes).f1


def phenology_f1(scene, folder, seed: int = 3, epochs: int = 30, iters_per_epoch: int = 10):
    """Per-class TEST F1 (cereal, maize, meadow) of the early-fusion net and of the SPOT-only FCN.

    Same budget for both nets (``epochs * iters_per_epoch`` steps of 8 crops of 40 x 40 px, same
    tiny widths, LR, seed). Also driven by ``benchmarks/threshold_sweep.py`` over seeds.
    """
    from iota2_spot_s2.inference import predict_array
    from iota2_spot_s2.inference.paired import predict_early_fusion_array

    _, spot, series, labels, split = scene
    crops = np.where(np.isin(labels, [CEREAL, MAIZE, MEADOW]), labels, 0).astype(np.uint16)
    budget = dict(epochs=epochs, iters_per_epoch=iters_per_epoch, batch_size=8, crop=40, lr=3e-3,
                  val_tile=80, val_max_tiles=4, seed=seed, resume=False,
                  schedule="constant")  # fmt: skip
    fused = train_early_fusion(spot, series, crops, split, checkpoint_path=folder / "f.pt",
                               model_kwargs={**TINY, "s2_features": 16, "s2_hidden": 16},
                               **budget)  # fmt: skip
    fcn_kwargs = {"widths": TINY["widths"], "bottleneck_blocks": 1}
    alone = train(spot, crops, split, model_name="fcn", checkpoint_path=folder / "s.pt",
                  model_kwargs=fcn_kwargs, **budget)  # fmt: skip
    codes = [CEREAL, MAIZE, MEADOW]
    f1_fused = crop_scores(
        predict_early_fusion_array(load_early_fusion(fused.checkpoint_path), spot.values, series),
        codes, crops, split,
    )  # fmt: skip
    f1_alone = crop_scores(predict_array(load_model(alone.checkpoint_path), spot.values), codes,
                           crops, split)  # fmt: skip
    return f1_fused, f1_alone


def test_fusion_learns_the_phenology_classes_that_spot_alone_cannot(scene, tmp_path) -> None:
    """Cereal, maize and meadow look alike on the SPOT date; only their S2 curves differ.

    300 steps for each net, scored on the TEST blocks; chance is a mean F1 of about 1/3. At 150
    steps the nets had not converged: min fused F1 0.06-0.96 over seeds here, 0.5947 on an
    Intel Xeon (issue 12). At 300 steps (benchmarks/threshold_sweep.py, 1 and 2 threads, this
    scene with training seeds 3-7 and scene seeds 1-3): min fused F1 0.84-0.97, fused minus
    SPOT-only mean F1 0.51-0.73; one training step gives 0.31 and 0.09. Scene seed 4 breaks the
    premise (SPOT alone reaches a mean F1 of 0.63-0.70 there, meadow 0.93).
    """
    f1_fused, f1_alone = phenology_f1(scene, tmp_path)
    assert min(f1_fused) > 0.7, (f1_fused, f1_alone)
    assert np.mean(f1_fused) > np.mean(f1_alone) + 0.3, (f1_fused, f1_alone)

"""Every map kind on dask.distributed: Sentinel-2 classifier maps, early fusion, late fusion.

For each kind, two local worker processes give the single-process outputs exactly (class map bit
for bit, 0-1000 probabilities equal), and a distributed run whose client dies midway is resumed
from its journal (and the parts the workers left) into the uninterrupted result. One LocalCluster
of two worker processes serves the module, reached through its address as
``--scheduler tcp://...`` would.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import rasterio
import torch

from iota2_spot_s2.fusion import fuse_rasters
from iota2_spot_s2.inference import writers
from iota2_spot_s2.inference.paired import predict_early_fusion_map
from iota2_spot_s2.nomenclature import read_nomenclature
from iota2_spot_s2.reference import rasterize_reference, split_blocks
from iota2_spot_s2.sensors import open_s2_timeseries, open_spot
from iota2_spot_s2.simulation import generate_scene
from iota2_spot_s2.timeseries import FitOptions, train_s2_classifier, write_s2_maps
from tests.test_early_fusion_inference import untrained
from tests.test_fusion_rasters import CODES, random_probamap, write_probamap

distributed = pytest.importorskip("distributed")

KINDS = ("classes", "confidence", "proba")


@pytest.fixture(scope="module")
def cluster(two_workers):
    """The address of the module's two-worker local cluster."""
    return two_workers.scheduler_address


@pytest.fixture(autouse=True)
def workers_threads():
    """The single-process runs use the threads each of the two workers gets (cores // 2).

    torch's CPU kernels may round differently with another thread count (measured here: one
    early-fusion probability of 230 400 rounded to 113 instead of 112 per mille with 2 threads
    vs 1): the maps are equal for equal thread counts, which is what is asserted.
    """
    from iota2_spot_s2.inference.distributed import _usable_cores

    before = torch.get_num_threads()
    torch.set_num_threads(max(1, _usable_cores() // 2))
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def scene(tmp_path_factory):
    info = generate_scene(tmp_path_factory.mktemp("scene"), size_m=240, seed=1)
    series = open_s2_timeseries(info.sensor_data / info.tile)
    return info, open_spot(info.spot_image), series


@pytest.fixture(scope="module")
def s2_models(scene):
    info, _, series = scene
    labels = rasterize_reference(info.reference, info.s2_grid, "code",
                                 layer=info.reference_layer).labels  # fmt: skip
    split = split_blocks(labels, block_size=8, seed=0)
    return {
        kind: train_s2_classifier(series, labels, split, kind=kind, class_codes=info.codes,
                                  seed=0, rf_params={"n_estimators": 20},
                                  tempcnn=FitOptions(epochs=2))
        for kind in ("rf", "tempcnn")
    }  # fmt: skip


@pytest.fixture(scope="module")
def fusion_sources(tmp_path_factory):
    """A 2 m source and a 4 m one (warped onto the first's grid by every task)."""
    root = tmp_path_factory.mktemp("fusion")
    rng = np.random.default_rng(11)
    fine, coarse = random_probamap(rng, (40, 56)), random_probamap(rng, (20, 28))
    fine[:, :5, :5] = 65535
    coarse[:, :2, :2] = 65535  # the top-left corner: no source
    return [write_probamap(root / "a.tif", fine, 2.0), write_probamap(root / "b.tif", coarse, 4.0)]


def _read(path: Path) -> np.ndarray:
    with rasterio.open(path) as src:
        return src.read()


def _same(a: dict[str, Path], b: dict[str, Path], kinds=KINDS) -> None:
    for kind in kinds:
        np.testing.assert_array_equal(_read(a[kind]), _read(b[kind]), err_msg=kind)


def _left_over(folder: Path) -> list[str]:
    """Journal, partial files, parts or locks left in ``folder``."""
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


def s2_map(models, scene, out, kind: str = "rf", **kw) -> dict[str, Path]:
    return write_s2_maps(models[kind], scene[2], out, window=12, progress=False, **kw)


def early_map(scene, out, **kw) -> dict[str, Path]:
    info, spot, series = scene
    model = untrained(info.codes, n_dates=12, bands=10, s2_mean=0.2, s2_std=0.1, spot_std=200.0)
    nom = read_nomenclature(info.nomenclature, info.color_file)
    done = predict_early_fusion_map(model, spot, series, out, tile=80, write_proba=True,
                                    nomenclature=nom, progress=False, **kw)  # fmt: skip
    return {"classes": done.class_map, "confidence": done.confidence, "proba": done.proba,
            "resumed": done.resumed_tiles}  # type: ignore[dict-item]  # fmt: skip


def late_map(sources, out, **kw) -> dict[str, Path]:
    cm = np.array([[30, 2, 1], [4, 25, 3], [2, 2, 40]])
    done = fuse_rasters(sources, out, codes=CODES, rule="dempster_shafer", confusions=[cm, cm.T],
                        block=16, progress=False, **kw)  # fmt: skip
    return {**done.paths, "resumed": done.resumed_windows}  # type: ignore[dict-item]


@pytest.mark.parametrize("kind", ["rf", "tempcnn"])
def test_s2_classifier_maps_on_two_workers_equal_one_process(scene, s2_models, cluster, kind,
                                                             tmp_path):  # fmt: skip
    single = s2_map(s2_models, scene, tmp_path / "single", kind)
    on_cluster = s2_map(s2_models, scene, tmp_path / "cluster", kind, scheduler=cluster)
    _same(single, on_cluster)
    assert (_read(single["classes"]) > 0).any()  # a map, not only nodata
    assert _left_over(tmp_path / "cluster") == []


def test_early_fusion_map_on_two_workers_equals_one_process(scene, cluster, tmp_path):
    single = early_map(scene, tmp_path / "single")
    on_cluster = early_map(scene, tmp_path / "cluster", scheduler=cluster)
    _same(single, on_cluster)
    assert len(np.unique(_read(single["classes"]))) > 1
    assert _left_over(tmp_path / "cluster") == []


def test_late_fusion_on_two_workers_equals_one_process(fusion_sources, cluster, tmp_path):
    single = late_map(fusion_sources, tmp_path / "single")
    on_cluster = late_map(fusion_sources, tmp_path / "cluster", scheduler=cluster)
    _same(single, on_cluster, (*KINDS, "choice"))
    classes = _read(single["classes"])[0]
    assert (classes[:3, :3] == 0).all() and (classes[8:] > 0).all()  # no source / both
    assert _left_over(tmp_path / "cluster") == []
    again = late_map(fusion_sources, tmp_path / "cluster", scheduler=cluster)
    assert again["resumed"] == 12  # finished outputs of the same inputs are kept


class ClientDies(RuntimeError):
    """The client process stops while tasks are running (a kill, a lost node)."""


@pytest.mark.parametrize("kind", ["s2", "early", "late"])
def test_an_interrupted_distributed_run_resumes_into_the_same_maps(
    scene, s2_models, fusion_sources, cluster, kind, tmp_path, monkeypatch
):
    run = {
        "s2": lambda out, **kw: s2_map(s2_models, scene, out, **kw),
        "early": lambda out, **kw: early_map(scene, out, **kw),
        "late": lambda out, **kw: late_map(fusion_sources, out, **kw),
    }[kind]
    whole = run(tmp_path / "whole")
    real, taken = writers.MapWriter.take_part, []

    def dies_at_the_second(self, core):  # type: ignore[no-untyped-def]
        found = real(self, core)
        taken.extend([core] if found else [])
        if len(taken) == 2:
            raise ClientDies("client killed")
        return found

    out = tmp_path / "out"
    with monkeypatch.context() as patch:
        patch.setattr(writers.MapWriter, "take_part", dies_at_the_second)
        with pytest.raises(ClientDies):
            run(out, scheduler=cluster)
    assert not list(out.glob("*.tif")) and list(out.glob(".*.journal"))
    again = run(out, scheduler=cluster)
    _same(whole, again)
    if kind != "s2":
        assert again["resumed"] >= 1  # journaled (or left as parts), not computed again
    assert _left_over(out) == []


def test_s2_and_fusion_workers_encode_only_the_pending_outputs(scene, s2_models):
    """A worker computes only the kinds its task asks for (the writer's pending outputs), and
    those equal the same kinds encoded with every other one."""
    from iota2_spot_s2.fusion._writer import encode as encode_fused
    from iota2_spot_s2.fusion.core import FusionResult
    from iota2_spot_s2.inference.tiling import PixelWindow
    from iota2_spot_s2.timeseries.outputs import S2Work

    clf, series = s2_models["rf"], scene[2]
    work, group = S2Work(clf, series), [PixelWindow(0, 0, 12, 12), PixelWindow(12, 0, 12, 12)]
    full = work.compute(clf, group, KINDS)
    some = work.compute(clf, group, ["classes"])
    assert [set(a) for _, a in full] == [set(KINDS)] * 2
    assert [set(a) for _, a in some] == [{"classes"}] * 2
    for (_, a), (_, b) in zip(full, some, strict=True):
        np.testing.assert_array_equal(a["classes"], b["classes"])

    rng = np.random.default_rng(3)
    proba = rng.dirichlet(np.ones(3), size=(6, 7)).transpose(2, 0, 1).astype(np.float32)
    valid = rng.random((6, 7)) > 0.2
    proba[:, ~valid] = np.nan
    top = np.where(valid, np.nan_to_num(proba).max(axis=0), np.nan)
    result = FusionResult((1, 2, 3), np.where(valid, np.nan_to_num(proba).argmax(0) + 1, 0), top,
                          proba, rng.integers(0, 3, (6, 7)).astype(np.uint8), valid)  # fmt: skip
    for encoding in ("cog", "iota2"):
        every = encode_fused(result, encoding)
        for kinds in (["proba"], ["confidence", "choice"]):
            only = encode_fused(result, encoding, kinds)
            assert set(only) == set(kinds)
            for kind in kinds:
                np.testing.assert_array_equal(only[kind], every[kind])

"""Map production as tile tasks on dask.distributed: same maps as one process, resumable, and a
worker killed mid-run is survived.

One LocalCluster of two worker processes serves the module (starting one costs seconds); the
tests reach it through its address, the way ``--scheduler tcp://...`` does.
"""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import numpy as np
import pytest
import torch

from iota2_spot_s2.inference import predict_map
from iota2_spot_s2.inference.tiling import plan_tiles
from iota2_spot_s2.inference.writers import save_part
from iota2_spot_s2.sensors import open_spot
from iota2_spot_s2.training import LoadedModel
from tests.test_inference_map import NOM, fcn, read, scene  # noqa: F401 (fixture)
from tests.test_inference_resume import Interrupted, interrupted

distributed = pytest.importorskip("distributed")

KINDS = ("class_map", "confidence", "proba")


class Killer(torch.nn.Module):
    """The same network; the first worker to make its n-th forward call dies of SIGKILL."""

    def __init__(self, net: torch.nn.Module, marker: Path, at: int) -> None:
        super().__init__()
        self.net, self.marker, self.at, self.calls = net, str(marker), at, 0
        self.downsample, self.receptive_field = net.downsample, net.receptive_field

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        if self.calls == self.at and not os.path.exists(self.marker):
            Path(self.marker).write_text(str(os.getpid()))
            os.kill(os.getpid(), signal.SIGKILL)
        return self.net(x)

    def state_dict(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        return self.net.state_dict(*args, **kwargs)


def test_a_local_cluster_gives_the_environment_back() -> None:
    import os

    from iota2_spot_s2.inference.distributed import connect

    before = dict(os.environ)
    with connect("local", 1) as client:
        assert set(client.run(lambda: os.environ.get("OMP_NUM_THREADS")).values()) == {"1"}
    assert dict(os.environ) == before


def _same_maps(a, b) -> None:
    for name in KINDS:
        np.testing.assert_array_equal(read(getattr(a, name)), read(getattr(b, name)))


def test_two_workers_give_the_single_process_maps_bit_for_bit(scene, two_workers, tmp_path):  # noqa: F811
    path, _ = scene
    model = fcn()
    opts = dict(tile=64, write_proba=True, nomenclature=NOM, progress=False)
    single = predict_map(model, path, tmp_path / "single", **opts)
    address = two_workers.scheduler_address
    on_cluster = predict_map(model, path, tmp_path / "cluster", scheduler=address, **opts)
    _same_maps(single, on_cluster)  # class map, confidence and 0-1000 probabilities: identical
    assert sorted(p.name for p in (tmp_path / "cluster").iterdir()) == [
        "map_classes.qml",
        "map_classes.tif",
        "map_confidence.tif",
        "map_proba.tif",
    ]  # fmt: skip  (no parts, journal or partial file left)
    # the CLI's input: a lazy DataArray, its graph sent to the workers, read window by window
    lazy = predict_map(model, open_spot(path, chunks=48), tmp_path / "lazy",
                       scheduler=two_workers.scheduler_address, **opts)  # fmt: skip
    _same_maps(single, lazy)


def test_a_worker_killed_mid_run_is_survived(scene, two_workers, tmp_path):  # noqa: F811
    path, _ = scene
    base = fcn()
    single = predict_map(base, path, tmp_path / "single", tile=64, write_proba=True,
                         progress=False)  # fmt: skip
    marker = tmp_path / "killed.pid"
    killer = LoadedModel(Killer(base.model, marker, at=3), base.class_codes, base.band_mean,
                         base.band_std, "fcn")  # fmt: skip
    with distributed.Client(two_workers.scheduler_address) as client:
        before = set(client.run(os.getpid).values())
        out = predict_map(killer, path, tmp_path / "out", tile=64, write_proba=True,
                          progress=False, scheduler=client)  # fmt: skip
        client.wait_for_workers(2, timeout=60)  # the nanny restarts the dead one
        after = set(client.run(os.getpid).values())
    assert marker.is_file() and int(marker.read_text()) in before - after  # one worker died
    _same_maps(single, out)


def test_a_failed_distributed_run_resumes_from_its_journal_and_parts(scene, two_workers, tmp_path):  # noqa: F811
    path, _ = scene
    base, whole, out = interrupted(path, tmp_path, 64, 3, scheduler=two_workers.scheduler_address)
    assert not list(out.glob("*.tif")) and list(out.glob(".*.journal"))
    again = predict_map(base, path, out, tile=64, write_proba=True, progress=False,
                        scheduler=two_workers.scheduler_address)  # fmt: skip
    assert again.resumed_tiles >= 2  # journaled, or parts the workers had left
    _same_maps(whole, again)


def test_parts_left_by_a_killed_client_are_taken_without_computing(scene, tmp_path):  # noqa: F811
    path, _ = scene
    base = fcn()
    whole = predict_map(base, path, tmp_path / "whole", tile=64, write_proba=True,
                        progress=False)  # fmt: skip
    out = tmp_path / "out"
    with pytest.raises(RuntimeError, match="boom"):
        predict_map(LoadedModel(Interrupted(base.model, 4), base.class_codes, base.band_mean,
                                base.band_std, "fcn"), path, out, tile=64, write_proba=True,
                    progress=False)  # fmt: skip
    journal = next(out.glob(".*.journal"))
    done = {tuple(t) for line in journal.read_text().splitlines()
            for t in json.loads(line).get("tiles", [])}  # fmt: skip
    parts = journal.with_suffix(".parts")
    parts.mkdir()
    names = {"classes": "class_map", "confidence": "confidence", "proba": "proba"}
    expected = {kind: read(getattr(whole, name)) for kind, name in names.items()}
    cores = [t.core for t in plan_tiles(150, 130, 64, 80, 8)]
    missing = [c for c in cores if (c.row, c.col, c.height, c.width) not in done]
    assert 0 < len(missing) < len(cores)
    for c in missing:  # what the workers had written when the client died
        window = (slice(None), slice(c.row, c.row_stop), slice(c.col, c.col_stop))
        save_part(parts, c, {kind: array[window] for kind, array in expected.items()})
    never = LoadedModel(Interrupted(base.model, 1), base.class_codes, base.band_mean,
                        base.band_std, "fcn")  # fmt: skip
    again = predict_map(never, path, out, tile=64, write_proba=True, progress=False)
    _same_maps(whole, again)
    assert not parts.exists()


def test_a_worker_encodes_only_the_outputs_the_writer_still_needs(scene):  # noqa: F811
    """Probabilities already finished (or not asked for) are not computed into every part."""
    from iota2_spot_s2.inference.engine import Engine
    from iota2_spot_s2.inference.engine_work import engine_work

    path, _ = scene
    model = fcn()
    options = {"margin": None, "batch_size": 1}
    work = engine_work(model, path, None, Engine, options)
    engine = work.build(1)
    group = engine.plan(*read(path).shape[-2:], 64)[:2]
    with engine:
        full = work.compute(engine, group, ("classes", "confidence", "proba"))
        only = work.compute(engine, group, ["classes", "confidence"])
    assert [set(arrays) for _, arrays in full] == [{"classes", "confidence", "proba"}] * 2
    assert [set(arrays) for _, arrays in only] == [{"classes", "confidence"}] * 2
    for (_, a), (_, b) in zip(full, only, strict=True):
        for kind in ("classes", "confidence"):
            np.testing.assert_array_equal(a[kind], b[kind])

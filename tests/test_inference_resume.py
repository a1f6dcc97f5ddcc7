"""Map production resumes per tile, one writer per output, stale temporaries cleaned.

Through the library (a network that fails midway) and through the real CLI (``kill -9`` of a
running ``fuse-classify predict``): the resumed map equals an uninterrupted run, bit for bit.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import rasterio

from iota2_spot_s2.errors import InputError
from iota2_spot_s2.inference import predict_map
from iota2_spot_s2.io import output_lock
from iota2_spot_s2.training import LoadedModel
from tests.test_cli import fuse_classify
from tests.test_cli_train import scene_files, write
from tests.test_inference_map import NOM, Exploding, fcn, read, scene  # noqa: F401 (fixture)


class Interrupted(Exploding):
    """The same weights (same fingerprint: same run), failing at its n-th forward call."""

    def state_dict(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        return self.net.state_dict(*args, **kwargs)


def interrupted(path: Path, tmp_path: Path, tile: int, fail_at: int, **kwargs):  # type: ignore[no-untyped-def]
    """The uninterrupted map, and the output folder of the same run stopped at its
    ``fail_at``-th forward call (its journal and partial files left to resume)."""
    base = fcn()
    alone = {k: v for k, v in kwargs.items() if k != "scheduler"}  # the reference: one process
    whole = predict_map(base, path, tmp_path / "whole", tile=tile, write_proba=True,
                        progress=False, **alone)  # fmt: skip
    failing = LoadedModel(Interrupted(base.model, fail_at), base.class_codes, base.band_mean,
                          base.band_std, "fcn")  # fmt: skip
    out = tmp_path / "out"
    with pytest.raises(RuntimeError, match="boom"):
        predict_map(failing, path, out, tile=tile, write_proba=True, progress=False, **kwargs)
    return base, whole, out


def _hidden(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


def test_a_pass_that_fails_midway_resumes_from_its_journal(scene, tmp_path):  # noqa: F811
    path, _ = scene
    base, whole, out = interrupted(path, tmp_path, 32, 15, nomenclature=NOM)
    left = _hidden(out)
    # kept for the resume: hidden, never named *.tif (iota2's file search would take them)
    assert any(n.endswith(".journal") for n in left) and not any(n.endswith(".tif") for n in left)
    assert not list(out.glob("*.tif"))
    again = predict_map(base, path, out, tile=32, write_proba=True, nomenclature=NOM,
                        progress=False)  # fmt: skip
    assert again.resumed_tiles >= 2
    for name in ("class_map", "confidence", "proba"):
        np.testing.assert_array_equal(read(getattr(again, name)), read(getattr(whole, name)))
    assert _hidden(out) == []


def test_a_resume_with_another_tile_size_recomputes_what_does_not_match(scene, tmp_path):  # noqa: F811
    """Interrupted at tile 32, resumed at tile 64 (as when the default tile changed): every
    64 px tile is computed whole. (It was skipped when its corner had been journaled by a 32 px
    tile, leaving three quarters of it empty.)"""
    path, _ = scene
    base, whole, out = interrupted(path, tmp_path, 32, 15)
    assert any(n.endswith(".journal") for n in _hidden(out))
    again = predict_map(base, path, out, tile=64, write_proba=True, progress=False)
    assert again.resumed_tiles == 0  # no 64 px core was written by the 32 px pass
    for name in ("class_map", "confidence", "proba"):
        np.testing.assert_array_equal(read(getattr(again, name)), read(getattr(whole, name)))
    assert _hidden(out) == []


def test_the_reported_time_is_counted_once_per_pass(scene, tmp_path):  # noqa: F811
    """Tiles are journaled as they finish; their time must not be added again at the end.

    (It was: every journal checkpoint added its seconds to the earlier passes' total, so the
    speed of a fresh run was reported about half of the real one.) The pass's own time is a
    part of the call's wall time, whatever the machine's speed.
    """
    path, _ = scene
    tic = time.perf_counter()
    done = predict_map(fcn(), path, tmp_path / "o", tile=32, nomenclature=NOM, progress=False)
    wall = time.perf_counter() - tic
    assert 0 < done.seconds <= wall
    assert done.pixels_per_second * done.seconds == pytest.approx(done_pixels(done.class_map))


def done_pixels(class_map: Path) -> int:
    with rasterio.open(class_map) as src:
        return src.width * src.height


def test_stale_temporaries_of_another_run_are_removed(scene, tmp_path):  # noqa: F811
    path, _ = scene
    out = tmp_path / "out"
    out.mkdir()
    for name in (".map_classes.0123456789ab.partial", ".map_classes.0123456789ab.journal",
                 ".map_confidence.0123456789ab.partial"):  # fmt: skip
        (out / name).write_bytes(b"left by a killed run with other weights")
    (out / ".other_classes.0123456789ab.partial").write_bytes(b"not ours")
    predict_map(fcn(), path, out, tile=64, progress=False)
    assert _hidden(out) == [".other_classes.0123456789ab.partial"]


def test_a_second_writer_is_refused_while_the_first_holds_the_folder(scene, tmp_path):  # noqa: F811
    path, _ = scene
    out = tmp_path / "out"
    with output_lock(out, "map"):
        with pytest.raises(InputError, match="another process"):
            predict_map(fcn(), path, out, tile=64, progress=False)
        other = predict_map(fcn(), path, out, tile=64, prefix="other", progress=False)
        assert other.class_map.is_file()  # another prefix is another output
    assert not list(out.glob("map_*"))
    assert predict_map(fcn(), path, out, tile=64, progress=False).class_map.is_file()


def _checkpoint_and_big_image(tmp_path: Path) -> tuple[Path, Path]:
    image, labels, split, _, _ = scene_files(tmp_path)
    ckpt = tmp_path / "fcn.pt"
    done = fuse_classify("train", "--image", str(image), "--reference", str(labels), "--split",
                         str(split), "--crop", "32", "--batch-size", "2", "--steps", "1",
                         "--out", str(ckpt))  # fmt: skip
    assert done.returncode == 0, done.stderr
    with rasterio.open(image) as src:
        small = src.read()
    big = write(tmp_path / "big.tif", np.tile(small, (1, 16, 16)))  # 1024 x 1024 px
    return ckpt, big


def test_predict_killed_with_sigkill_resumes_and_equals_an_uninterrupted_run(tmp_path):
    ckpt, big = _checkpoint_and_big_image(tmp_path)
    args = ["predict", "--checkpoint", str(ckpt), "--image", str(big), "--tile", "256"]
    whole = fuse_classify(*args, "--device", "auto", "--out", str(tmp_path / "whole"))
    assert whole.returncode == 0, whole.stderr
    out = tmp_path / "killed"
    proc = subprocess.Popen([sys.executable, "-m", "iota2_spot_s2.cli", *args, "--out", str(out)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and proc.poll() is None:
        journals = list(out.glob(".*.journal")) if out.is_dir() else []
        if journals and len(journals[0].read_text().splitlines()) >= 3:
            break
        time.sleep(0.05)
    assert proc.poll() is None, "the run ended before it could be killed: use a bigger image"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not list(out.glob("*.tif"))  # nothing under a final name
    journal = next(out.glob(".*.journal"))
    kept = sum(len(json.loads(line).get("tiles", [])) for line in journal.read_text().splitlines())
    again = fuse_classify(*args, "--out", str(out))
    assert again.returncode == 0, again.stderr
    assert kept >= 2 and f"resumed, {kept} tiles kept" in again.stdout
    for name in ("map_classes.tif", "map_confidence.tif"):
        np.testing.assert_array_equal(read(out / name), read(tmp_path / "whole" / name))
    assert _hidden(out) == []


def test_a_write_failing_while_the_network_fails_is_not_lost(scene, tmp_path, monkeypatch):  # noqa: F811
    """Both errors reach the user: the network's is raised, the write's is attached to it."""
    from iota2_spot_s2.inference.writers import MapWriter

    def failing_write(self, core, proba, invalid):  # type: ignore[no-untyped-def]
        time.sleep(0.5)  # still in flight when the network fails on the next tile
        raise OSError("disk gone")

    monkeypatch.setattr(MapWriter, "write", failing_write)
    path, _ = scene
    base = fcn()
    failing = LoadedModel(Interrupted(base.model, 2), base.class_codes, base.band_mean,
                          base.band_std, "fcn")  # fmt: skip
    with pytest.raises(RuntimeError, match="boom") as info:
        predict_map(failing, path, tmp_path / "out", tile=32, progress=False)
    notes = getattr(info.value, "__notes__", [])
    assert any("write failed as well" in n and "disk gone" in n for n in notes), notes


def test_a_resume_checks_the_room_it_still_needs_and_keeps_its_work(scene, tmp_path, monkeypatch):  # noqa: F811
    """A disk filled since the interruption is said up front (one line naming the folder), the
    partial files and journal stay for a later resume, and the room asked for leaves out what
    the partial files already hold."""
    import re
    from types import SimpleNamespace

    from iota2_spot_s2.grid import Grid
    from iota2_spot_s2.inference import writers

    path, _ = scene
    base, whole, out = interrupted(path, tmp_path, 32, 15)
    left = _hidden(out)
    real = writers.os.statvfs
    monkeypatch.setattr(writers.os, "statvfs", lambda _: SimpleNamespace(f_bavail=0, f_frsize=1))
    with pytest.raises(InputError, match="the disk is full") as resumed:
        predict_map(base, path, out, tile=32, write_proba=True, progress=False)
    assert str(out) in str(resumed.value) and _hidden(out) == left  # nothing lost
    with rasterio.open(path) as src:
        grid = Grid(src.crs, src.transform, src.width, src.height)
    specs = writers.output_files(tmp_path / "fresh", "map", [int(c) for c in base.class_codes],
                                 proba=True)  # fmt: skip
    (tmp_path / "fresh").mkdir()
    with pytest.raises(InputError, match="the disk is full") as fresh:
        writers.check_room(specs, grid)

    def need(error: pytest.ExceptionInfo[InputError]) -> int:
        return int(re.search(r"need at least (\d+)", str(error.value)).group(1))  # type: ignore[union-attr]

    assert need(resumed) < need(fresh)
    monkeypatch.setattr(writers.os, "statvfs", real)
    again = predict_map(base, path, out, tile=32, write_proba=True, progress=False)
    assert again.resumed_tiles >= 2
    np.testing.assert_array_equal(read(again.class_map), read(whole.class_map))

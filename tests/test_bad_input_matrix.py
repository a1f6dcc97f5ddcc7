"""Every entry point against every class of bad input, through the real CLI in a subprocess.

One table of cases (entry point, fault class, argv builder, expected words) and one checker:
exit status 2, exactly one non-empty stderr line naming the file, option or cfg key at fault, no
traceback, nothing printed as a result, no new or changed file in the output folder (paths,
sizes, mtimes, SHA-256) and the inputs untouched (same snapshot of the whole input tree).

Fault classes:

- ``missing``: an input file that does not exist;
- ``unreadable``: an input the process may not read (``chmod 000``; as root, where permissions
  do not bind, a folder standing where the file should be);
- ``wrong_kind``: a file of another kind (text as a raster or a checkpoint, binary cfg);
- ``vector``: a vector without the named field, or with no feature;
- ``value``: an option or cfg setting of the wrong type or out of range;
- ``silent``: inputs that used to give a wrong result reported as success (empty budgets,
  another CRS on the image grid, a probability raster as a map, no shared class code, a label
  raster using 0 as a class, two writers in one folder);
- ``path``: outputs that cannot be written where asked (a file in the way, a read-only folder,
  a full disk simulated by ``RLIMIT_FSIZE``, a prefix leaving the folder).

Fixtures are tiny: a 64 px synthetic image (``tests.test_training.make_scene``), the 120 m
seeded simulated scene and a checkpoint trained for one step, each made once per module.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import resource
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from iota2_spot_s2.io import output_lock
from iota2_spot_s2.simulation import SceneInfo, generate_scene
from tests.test_cli_train import write
from tests.test_settings_schema import _sections, _with
from tests.test_training import make_scene

IS_ROOT = hasattr(os, "geteuid") and os.geteuid() == 0
#: Bytes a process may write per file in the ``full_disk`` cases (lock files and small JSON fit).
FULL_DISK_BYTES = 2048
CLI = [sys.executable, "-m", "iota2_spot_s2.cli"]


# ----------------------------------------------------------------------------- fixtures


@dataclass(frozen=True)
class World:
    """The module's shared inputs (never to be modified by a case)."""

    root: Path
    scene: SceneInfo
    image: Path
    labels: Path
    split: Path
    labels_utm: Path
    labels_zero_class: Path
    labels_unknown: Path
    proba: Path
    scene_map: Path
    empty_gpkg: Path
    text_tif: Path
    text_pt: Path
    unreadable_tif: Path
    unreadable_pt: Path
    checkpoint: Path
    nomenclature_other: Path


@dataclass
class Ctx:
    """One case's world, output folder (snapshotted) and own input folder (hashed)."""

    world: World
    out: Path
    inputs: Path

    def cfg(self, *changes: tuple[str, Any], name: str = "run.cfg") -> Path:
        """A valid cfg on the simulated scene (output under ``out``) with ``changes`` applied."""
        from iota2_spot_s2.settings import format_cfg

        sections = _sections(self.world.scene, self.out / "chain")
        for key, value in changes:
            sections = _with(sections, key, value)
        path = self.inputs / name
        path.write_text(format_cfg(sections))
        return path


def _unreadable(path: Path, like: Path) -> Path:
    """A copy of ``like`` this process cannot read (a folder in its place when run as root)."""
    if IS_ROOT:
        path.mkdir()
    else:
        shutil.copy(like, path)
        path.chmod(0)
    return path


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    """Tiny inputs for every case, made once; the checkpoint is trained for one step."""
    from iota2_spot_s2.simulation.vector import write_reference

    root = tmp_path_factory.mktemp("inputs")
    scene = generate_scene(root / "scene", size_m=120.0, seed=0)
    image, labels, split = make_scene(size=64)
    image_path = write(root / "image.tif", image)
    labels_path = write(root / "labels.tif", labels, nodata=0)
    zero_class = np.where(labels == 0, 5, labels // 10 - 1).astype(np.uint8)  # codes 0, 1, 2
    grid = scene.spot_grid
    rng = np.random.default_rng(0)
    scene_map = root / "scene_map.tif"
    _write_on(scene_map, rng.integers(1, 4, (grid.height, grid.width)).astype(np.uint8), grid)
    nomenclature = root / "nomenclature_other.txt"
    nomenclature.write_text("water:1\nforest:2\n")
    checkpoint = root / "model" / "fcn.pt"
    trained = subprocess.run(
        [*CLI, "train", "--image", str(image_path), "--reference", str(labels_path), "--steps",
         "1", "--crop", "32", "--batch-size", "2", "--val-pixels", "256", "--block-m", "24",
         "--out", str(checkpoint)], capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert trained.returncode == 0, trained.stderr
    text = "this is a text file, not a raster\n"
    world = World(
        root=root, scene=scene, image=image_path, labels=labels_path,
        split=write(root / "split.tif", split),
        labels_utm=write(root / "labels_utm.tif", labels, nodata=0, crs="EPSG:32631"),
        labels_zero_class=write(root / "labels_zero_class.tif", zero_class, nodata=5),
        labels_unknown=write(root / "labels_unknown.tif", (labels * 7).astype(np.uint16), nodata=0),
        proba=write(root / "proba.tif", np.stack([labels * 3] * 3).astype(np.uint16)),
        scene_map=scene_map,
        empty_gpkg=write_reference(root / "empty.gpkg", [], "EPSG:2154", {}),
        text_tif=_text(root / "notes.tif", text), text_pt=_text(root / "notes.pt", text),
        unreadable_tif=_unreadable(root / "locked.tif", image_path),
        unreadable_pt=_unreadable(root / "locked.pt", checkpoint),
        checkpoint=checkpoint, nomenclature_other=nomenclature,
    )  # fmt: skip
    yield world
    for path in (world.unreadable_tif, world.unreadable_pt):
        if path.is_file():
            path.chmod(0o644)  # let pytest clean it up


def _text(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def _write_on(path: Path, array: np.ndarray, grid: Any) -> None:
    import rasterio

    profile = grid.profile(driver="GTiff", count=1, dtype=array.dtype.name, nodata=0)
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(array, 1)


# ----------------------------------------------------------------------------- the checker


def snapshot(root: Path) -> dict[str, tuple[Any, ...]]:
    """Every path under ``root``: folders by name, files by size, mtime and SHA-256."""
    seen: dict[str, tuple[Any, ...]] = {}
    for path in sorted(root.rglob("*")):
        rel = str(path.relative_to(root))
        if path.is_symlink() or not path.is_file():
            seen[rel] = ("link" if path.is_symlink() else "dir",)
            continue
        stat = path.stat()
        try:
            digest = hashlib.sha256(path.read_bytes()).hexdigest()
        except PermissionError:
            digest = "unreadable"
        seen[rel] = (stat.st_size, stat.st_mtime_ns, digest)
    return seen


def _full_disk() -> None:  # runs in the child before exec
    resource.setrlimit(resource.RLIMIT_FSIZE, (FULL_DISK_BYTES, FULL_DISK_BYTES))


def _readonly_argv(folder: Path, argv: list[str]) -> list[str]:
    """``argv`` run where ``folder`` is read-only (a private read-only bind mount as root)."""
    if not IS_ROOT:
        return argv
    script = 'mount --bind "$0" "$0" && mount -o remount,bind,ro "$0" && exec "$@"'
    return ["unshare", "-m", "--propagation", "private", "sh", "-c", script, str(folder), *argv]


@contextlib.contextmanager
def conditions(mode: str, ctx: Ctx) -> Iterator[Callable[[list[str]], Any]]:
    """A runner of ``fuse-classify <argv>`` under the case's ``mode`` (see :class:`Case`)."""
    kwargs: dict[str, Any] = {"capture_output": True, "text": True, "timeout": 300}
    if mode == "full_disk":
        yield lambda argv: subprocess.run([*CLI, *argv], preexec_fn=_full_disk, **kwargs)
    elif mode == "readonly" and IS_ROOT:
        if (
            shutil.which("unshare") is None
            or subprocess.run(_readonly_argv(ctx.out, ["true"]), capture_output=True).returncode
        ):
            pytest.skip("root without mount namespaces: no read-only folder to test with")
        yield lambda argv: subprocess.run(_readonly_argv(ctx.out, [*CLI, *argv]), **kwargs)
    elif mode == "readonly":
        ctx.out.chmod(0o555)
        try:
            yield lambda argv: subprocess.run([*CLI, *argv], **kwargs)
        finally:
            ctx.out.chmod(0o755)
    elif mode == "locked":
        with output_lock(ctx.out / "maps", "map"):  # another writer holds the folder
            yield lambda argv: subprocess.run([*CLI, *argv], **kwargs)
    else:
        yield lambda argv: subprocess.run([*CLI, *argv], **kwargs)


LOG_LINE = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d+ ")


def assert_refused(
    result: subprocess.CompletedProcess[str], words: list[str], logs: bool = False
) -> str:
    """Exit 2, one stderr line, no traceback, no result printed, every word on the line.

    With ``logs``, timestamped progress lines logged before the failure are allowed.
    """
    assert "Traceback" not in result.stderr, result.stderr
    assert result.returncode == 2, (result.returncode, result.stderr[-2000:])
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    if logs:
        lines = [line for line in lines if not LOG_LINE.match(line)]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("fuse-classify"), lines[0]
    assert ": error: " in lines[0], lines[0]
    for word in words:
        assert word in lines[0], (word, lines[0])
    assert result.stdout == "", result.stdout
    return lines[0]


# ----------------------------------------------------------------------------- the table

Build = Callable[[Ctx], list[str]]


@dataclass(frozen=True)
class Case:
    """One bad input given to one entry point.

    Attributes:
        entry: The entry point (``train``, ``iota2 fuse``, ...).
        fault: The fault class (module docstring).
        name: What is wrong, in a few words (the test id).
        argv: Builds the arguments after ``fuse-classify`` (may write the case's own inputs).
        words: Builds the words the error line must hold (the path, option or key at fault).
        mode: ``plain``; ``full_disk`` (RLIMIT_FSIZE); ``readonly`` (the output folder);
            ``locked`` (another process holds the ``predict`` lock of ``<out>/maps``).
        xfail: The fix still needed elsewhere, when the case is known to fail.
        logs: Progress lines logged before the failure are allowed (training had begun).
    """

    entry: str
    fault: str
    name: str
    argv: Build
    words: Build
    mode: str = "plain"
    xfail: str | None = None
    logs: bool = False


def _train(c: Ctx, *extra: str, image: Path | None = None, ref: Path | None = None) -> list[str]:
    return ["train", "--image", str(image or c.world.image), "--reference",
            str(ref or c.world.labels), "--steps", "1", "--crop", "32", "--batch-size", "2",
            "--val-pixels", "256", "--block-m", "24", "--out", str(c.out / "m" / "fcn.pt"),
            *extra]  # fmt: skip


def _predict(c: Ctx, *extra: str, ckpt: Path | None = None, image: Path | None = None,
             out: Path | None = None) -> list[str]:  # fmt: skip
    return ["predict", "--checkpoint", str(ckpt or c.world.checkpoint), "--image",
            str(image or c.world.image), "--out", str(out or c.out / "maps"), "--tile", "64",
            *extra]  # fmt: skip


def _evaluate(c: Ctx, *extra: str, map_: Path | None = None, ref: Path | None = None,
              out: Path | None = None) -> list[str]:  # fmt: skip
    return ["evaluate", "--map", str(map_ or c.world.labels), "--reference",
            str(ref or c.world.labels), "--out", str(out or c.out / "eval"), *extra]  # fmt: skip


def _simulate(c: Ctx, *extra: str, out: Path | None = None) -> list[str]:
    return ["simulate", "--size-m", "120", "--out", str(out or c.out / "scene"), *extra]


def _file_in_the_way(c: Ctx) -> Path:
    taken = c.out / "taken"
    taken.write_text("a file where a folder is wanted\n")
    return taken


def _binary_cfg(c: Ctx) -> Path:
    path = c.inputs / "binary.cfg"
    path.write_bytes(b"\x00\x01\x02\xff" * 64)
    return path


def _w(*words: str | Callable[[Ctx], Any]) -> Build:
    """Expected words: strings as given, callables applied to the case's context."""
    return lambda c: [w if isinstance(w, str) else str(w(c)) for w in words]


def _cfg_cases(entry: str, *, parse_only: bool = True) -> list[Case]:
    """The cfg faults a cfg-driven entry point (``run``, ``iota2 ...``) must refuse.

    Binary files and wrong types are refused by the one ``load_config`` every route calls
    first: ``parse_only=False`` leaves them to ``run`` and ``iota2 check`` (time).
    """
    cmd = entry.split()
    gt = "chain.ground_truth"
    cases = [
        Case(entry, "missing", "cfg file", lambda c: [*cmd, str(c.inputs / "none.cfg")],
             _w(lambda c: c.inputs / "none.cfg")),
        Case(entry, "wrong_kind", "binary cfg", lambda c: [*cmd, str(_binary_cfg(c))],
             _w(lambda c: c.inputs / "binary.cfg", "binary")),
        Case(entry, "value", "tile_size type",
             lambda c: [*cmd, str(c.cfg(("spot_s2_fusion.tile_size", "big")))],
             _w("spot_s2_fusion.tile_size")),
        Case(entry, "value", "epochs range",
             lambda c: [*cmd, str(c.cfg(("spot_s2_fusion.training.epochs", 0)))],
             _w("spot_s2_fusion.training.epochs")),
        Case(entry, "missing", "ground truth",
             lambda c: [*cmd, str(c.cfg((gt, str(c.inputs / "gone.gpkg"))))],
             _w(lambda c: c.inputs / "gone.gpkg")),
        Case(entry, "vector", "data_field absent",
             lambda c: [*cmd, str(c.cfg(("chain.data_field", "nope")))],
             _w("nope")),
        Case(entry, "vector", "empty ground truth",
             lambda c: [*cmd, str(c.cfg((gt, str(c.world.empty_gpkg))))],
             _w(lambda c: c.world.empty_gpkg)),
        Case(entry, "wrong_kind", "spot image is text",
             lambda c: [*cmd, str(c.cfg(("spot_s2_fusion.spot_images",
                                          {c.world.scene.tile: str(c.world.text_tif)})))],
             _w(lambda c: c.world.text_tif)),
    ]  # fmt: skip
    cases = [c for c in cases if parse_only or c.name not in ("binary cfg", "tile_size type")]
    return [replace(c, xfail=XFAIL.get((entry, c.name))) for c in cases]


#: Cases whose fix belongs to a package another engineer owns: the exact fix needed.
XFAIL: dict[tuple[str, str], str] = {}


CASES: list[Case] = [
    # inspect ---------------------------------------------------------------------------
    Case("inspect", "missing", "path", lambda c: ["inspect", str(c.inputs / "none.tif")],
         _w(lambda c: c.inputs / "none.tif")),
    Case("inspect", "unreadable", "raster", lambda c: ["inspect", str(c.world.unreadable_tif)],
         _w(lambda c: c.world.unreadable_tif)),
    Case("inspect", "wrong_kind", "text as raster", lambda c: ["inspect", str(c.world.text_tif)],
         _w(lambda c: c.world.text_tif)),
    Case("inspect", "vector", "field absent",
         lambda c: ["inspect", str(c.world.scene.reference), "--field", "nope"],
         _w(lambda c: c.world.scene.reference, "nope")),
    Case("inspect", "value", "product choice",
         lambda c: ["inspect", str(c.world.image), "--product", "XYZ"], _w("--product")),
    # train -----------------------------------------------------------------------------
    Case("train", "missing", "image", lambda c: _train(c, image=c.inputs / "none.tif"),
         _w(lambda c: c.inputs / "none.tif")),
    Case("train", "missing", "reference", lambda c: _train(c, ref=c.inputs / "none.gpkg"),
         _w(lambda c: c.inputs / "none.gpkg")),
    Case("train", "unreadable", "image", lambda c: _train(c, image=c.world.unreadable_tif),
         _w(lambda c: c.world.unreadable_tif)),
    Case("train", "wrong_kind", "text image", lambda c: _train(c, image=c.world.text_tif),
         _w(lambda c: c.world.text_tif)),
    Case("train", "wrong_kind", "text reference", lambda c: _train(c, ref=c.world.text_tif),
         _w(lambda c: c.world.text_tif)),
    Case("train", "vector", "field absent",
         lambda c: _train(c, "--field", "nope", image=c.world.scene.spot_image,
                          ref=c.world.scene.reference), _w(lambda c: c.world.scene.reference,
                                                           "nope")),
    Case("train", "vector", "empty vector",
         lambda c: _train(c, image=c.world.scene.spot_image, ref=c.world.empty_gpkg),
         _w(lambda c: c.world.empty_gpkg)),
    *[Case("train", "silent", f"{flag} {value}", lambda c, f=flag, v=value: _train(c, f, v),
           _w(flag)) for flag, value in [("--epochs", "0"), ("--epochs", "-3"),
                                         ("--minutes", "0"), ("--minutes", "-1"),
                                         ("--block-m", "0"), ("--block-m", "-10")]],
    Case("train", "value", "--precision fp16 on a CPU",
         lambda c: _train(c, "--precision", "fp16", "--device", "cpu"),
         _w("--precision fp16", "CUDA")),
    Case("train", "silent", "labels in another CRS", lambda c: _train(c, ref=c.world.labels_utm),
         _w(lambda c: c.world.labels_utm, "EPSG:32631")),
    Case("train", "silent", "0 used as a class beside a nodata tag",
         lambda c: _train(c, ref=c.world.labels_zero_class),
         _w(lambda c: c.world.labels_zero_class, "0 as a class")),
    Case("train", "path", "out is a folder",
         lambda c: ["train", "--image", str(c.world.image), "--reference", str(c.world.labels),
                    "--steps", "1", "--out", str(c.out)], _w(lambda c: c.out)),
    Case("train", "path", "out under a file",
         lambda c: _train(c)[:-2] + ["--out", str(_file_in_the_way(c) / "fcn.pt")],
         _w(lambda c: c.out / "taken")),
    Case("train", "path", "read-only folder", _train, _w(lambda c: c.out), mode="readonly"),
    Case("train", "path", "full disk", _train, _w(lambda c: c.out / "m" / "fcn.pt"),
         mode="full_disk", logs=True),
    # predict ---------------------------------------------------------------------------
    Case("predict", "missing", "checkpoint", lambda c: _predict(c, ckpt=c.inputs / "none.pt"),
         _w(lambda c: c.inputs / "none.pt")),
    Case("predict", "missing", "image", lambda c: _predict(c, image=c.inputs / "none.tif"),
         _w(lambda c: c.inputs / "none.tif")),
    Case("predict", "unreadable", "checkpoint",
         lambda c: _predict(c, ckpt=c.world.unreadable_pt), _w(lambda c: c.world.unreadable_pt)),
    Case("predict", "wrong_kind", "text checkpoint", lambda c: _predict(c, ckpt=c.world.text_pt),
         _w(lambda c: c.world.text_pt)),
    Case("predict", "wrong_kind", "text image", lambda c: _predict(c, image=c.world.text_tif),
         _w(lambda c: c.world.text_tif)),
    Case("predict", "wrong_kind", "image with other bands",
         lambda c: _predict(c, image=c.world.scene.spot_image),
         _w(lambda c: c.world.scene.spot_image)),
    *[Case("predict", "value", f"--tile {v}", lambda c, v=v: [*_predict(c), "--tile", v],
           _w("--tile", "at least 64")) for v in ("0", "-64", "1")],
    Case("predict", "path", "--prefix ../../x", lambda c: [*_predict(c), "--prefix", "../../x"],
         _w("--prefix", "../../x")),
    Case("predict", "value", "--precision fp16 on a CPU",
         lambda c: [*_predict(c), "--precision", "fp16", "--device", "cpu"],
         _w("--precision fp16", "CUDA")),
    Case("predict", "value", "--precision fp64", lambda c: [*_predict(c), "--precision", "fp64"],
         _w("--precision", "fp64")),
    Case("predict", "silent", "nomenclature without the model's codes",
         lambda c: [*_predict(c), "--nomenclature", str(c.world.nomenclature_other)],
         _w(lambda c: c.world.nomenclature_other)),
    Case("predict", "silent", "two writers in one folder", _predict, _w(lambda c: c.out / "maps",
                                                                        "another process"),
         mode="locked"),
    Case("predict", "path", "out is a file",
         lambda c: _predict(c, out=_file_in_the_way(c)), _w(lambda c: c.out / "taken")),
    Case("predict", "path", "read-only folder", _predict, _w(lambda c: c.out), mode="readonly"),
    Case("predict", "path", "full disk", lambda c: [*_predict(c), "--proba"],
         _w(lambda c: c.out / "maps"), mode="full_disk"),
    # evaluate --------------------------------------------------------------------------
    Case("evaluate", "missing", "map", lambda c: _evaluate(c, map_=c.inputs / "none.tif"),
         _w(lambda c: c.inputs / "none.tif")),
    Case("evaluate", "missing", "reference", lambda c: _evaluate(c, ref=c.inputs / "none.gpkg"),
         _w(lambda c: c.inputs / "none.gpkg")),
    Case("evaluate", "unreadable", "map", lambda c: _evaluate(c, map_=c.world.unreadable_tif),
         _w(lambda c: c.world.unreadable_tif)),
    Case("evaluate", "wrong_kind", "text map", lambda c: _evaluate(c, map_=c.world.text_tif),
         _w(lambda c: c.world.text_tif)),
    Case("evaluate", "wrong_kind", "text split",
         lambda c: _evaluate(c, "--split", str(c.world.text_tif)), _w(lambda c: c.world.text_tif)),
    Case("evaluate", "vector", "field absent",
         lambda c: _evaluate(c, "--field", "nope", map_=c.world.scene_map,
                             ref=c.world.scene.reference),
         _w(lambda c: c.world.scene.reference, "nope")),
    Case("evaluate", "vector", "empty vector",
         lambda c: _evaluate(c, map_=c.world.scene_map, ref=c.world.empty_gpkg),
         _w(lambda c: c.world.empty_gpkg)),
    Case("evaluate", "silent", "probability raster as map",
         lambda c: _evaluate(c, map_=c.world.proba), _w(lambda c: c.world.proba, "class map")),
    Case("evaluate", "silent", "--subset without --split",
         lambda c: _evaluate(c, "--subset", "test"), _w("--subset", "--split")),
    Case("evaluate", "silent", "reference in another CRS",
         lambda c: _evaluate(c, ref=c.world.labels_utm), _w(lambda c: c.world.labels_utm)),
    Case("evaluate", "silent", "no reference code in the map",
         lambda c: _evaluate(c, ref=c.world.labels_unknown),
         _w(lambda c: c.world.labels_unknown)),
    Case("evaluate", "silent", "0 used as a class beside a nodata tag",
         lambda c: _evaluate(c, ref=c.world.labels_zero_class),
         _w(lambda c: c.world.labels_zero_class, "0 as a class")),
    Case("evaluate", "path", "out is a file",
         lambda c: _evaluate(c, out=_file_in_the_way(c)), _w(lambda c: c.out / "taken")),
    Case("evaluate", "path", "read-only folder", _evaluate, _w(lambda c: c.out),
         mode="readonly"),
    Case("evaluate", "path", "full disk", _evaluate, _w(lambda c: c.out / "eval"),
         mode="full_disk"),
    # simulate --------------------------------------------------------------------------
    *[Case("simulate", "value", f"--size-m {v}", lambda c, v=v: [*_simulate(c), "--size-m", v],
           _w("--size-m", "120-20000")) for v in ("0", "-50", "1")],
    Case("simulate", "path", "out is a file", lambda c: _simulate(c, out=_file_in_the_way(c)),
         _w(lambda c: c.out / "taken")),
    Case("simulate", "path", "read-only folder", _simulate, _w(lambda c: c.out),
         mode="readonly"),
    Case("simulate", "path", "full disk", _simulate, _w(lambda c: c.out / "scene"),
         mode="full_disk"),
    # cfg-driven entry points -----------------------------------------------------------
    *_cfg_cases("run"),
    Case("run", "path", "output_path is a file",
         lambda c: ["run", str(c.cfg(("chain.output_path", str(_file_in_the_way(c)))))],
         _w(lambda c: c.out / "taken")),
    *_cfg_cases("iota2 check"),
    *_cfg_cases("iota2 step", parse_only=False),
    *[Case(entry, "value", f"{key} fp16 on a CPU", lambda c, e=entry, k=key: [*e.split(), str(
        c.cfg((f"spot_s2_fusion.{k}", "fp16"), ("spot_s2_fusion.device", "cpu")))],
        _w(f"spot_s2_fusion.{key}", "fp16", "CUDA")) for entry in ("run", "iota2 step")
      for key in ("map_precision", "training.precision")],
    *_cfg_cases("iota2 features", parse_only=False),
    # fuse reads the ground truth and SPOT image only after the step's outputs: without them it
    # refuses on those (last case), so the vector and SPOT faults are the step's cases
    *[c for c in _cfg_cases("iota2 fuse", parse_only=False) if c.fault in ("missing", "value")],
    Case("iota2 fuse", "missing", "no iota2 classif outputs", lambda c: ["iota2", "fuse",
         str(c.cfg())], _w("classif")),
    Case("iota2 fuse", "value", "--rule", lambda c: ["iota2", "fuse", str(c.cfg()), "--rule",
         "median"], _w("--rule", "median")),
]  # fmt: skip


def _param(case: Case) -> Any:
    marks = []
    if case.xfail:
        marks.append(pytest.mark.xfail(strict=True, reason=case.xfail))
    return pytest.param(case, id=_case_id(case), marks=marks)


@dataclass
class Outcome:
    """What one case did: the process, and the snapshots around it."""

    result: subprocess.CompletedProcess[str]
    words: list[str]
    out_before: dict[str, tuple[Any, ...]]
    out_after: dict[str, tuple[Any, ...]]
    inputs_before: dict[str, tuple[Any, ...]]
    inputs_after: dict[str, tuple[Any, ...]]


def _run(case: Case, world: World, folder: Path) -> Outcome:
    ctx = Ctx(world, folder / "out", folder / "inputs")
    ctx.out.mkdir(parents=True)
    ctx.inputs.mkdir()
    argv, words = case.argv(ctx), case.words(ctx)
    inputs_before = snapshot(ctx.inputs)
    with conditions(case.mode, ctx) as run:
        before = snapshot(ctx.out)
        result = run(argv)
        after = snapshot(ctx.out)
    return Outcome(result, words, before, after, inputs_before, snapshot(ctx.inputs))


def _case_id(case: Case) -> str:
    return f"{case.entry}-{case.fault}-{case.name}"


@pytest.fixture(scope="module")
def outcomes(
    world: World, request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Outcome | BaseException]:
    """Every selected case run once, a few at a time (each is mostly interpreter start-up).

    The shared inputs are snapshotted before the first and after the last case
    (:func:`test_no_case_touched_the_shared_inputs`).
    """
    selected = [item.callspec.params["case"] for item in request.session.items
                if getattr(item, "callspec", None) and "case" in item.callspec.params]  # fmt: skip
    root = tmp_path_factory.mktemp("cases")
    shared_before = snapshot(world.root)

    def one(index_case: tuple[int, Case]) -> Outcome | BaseException:
        index, case = index_case
        try:
            return _run(case, world, root / f"case{index:03d}")
        except BaseException as exc:  # noqa: BLE001 (reported by the case's own test)
            return exc

    with ThreadPoolExecutor(max_workers=4) as pool:
        results = dict(zip([_case_id(c) for c in selected],
                           pool.map(one, enumerate(selected)), strict=True))  # fmt: skip
    results["shared inputs"] = Outcome(subprocess.CompletedProcess([], 0), [], {}, {},
                                       shared_before, snapshot(world.root))  # fmt: skip
    return results


@pytest.mark.parametrize("case", [_param(case) for case in CASES])
def test_bad_input_is_one_line_and_touches_nothing(
    case: Case, outcomes: dict[str, Outcome | BaseException]
) -> None:
    outcome = outcomes[_case_id(case)]
    if isinstance(outcome, BaseException):
        raise outcome
    assert_refused(outcome.result, outcome.words, logs=case.logs)
    assert outcome.out_after == outcome.out_before, "output folder changed"
    assert outcome.inputs_after == outcome.inputs_before, "the case's inputs changed"


def test_no_case_touched_the_shared_inputs(outcomes: dict[str, Outcome | BaseException]) -> None:
    shared = outcomes["shared inputs"]
    assert isinstance(shared, Outcome)
    assert shared.inputs_after == shared.inputs_before


def test_the_table_covers_every_entry_point_and_fault_class() -> None:
    entries = {case.entry for case in CASES}
    assert entries == {"inspect", "train", "predict", "evaluate", "run", "simulate",
                       "iota2 check", "iota2 step", "iota2 features", "iota2 fuse"}  # fmt: skip
    faults = {case.fault for case in CASES}
    assert faults == {"missing", "unreadable", "wrong_kind", "vector", "value", "silent", "path"}
    ids = [f"{case.entry}-{case.fault}-{case.name}" for case in CASES]
    assert len(ids) == len(set(ids))


def test_inspect_into_a_closed_pipe_is_silent(world: World) -> None:
    """``fuse-classify inspect X | head``: the reader has gone before anything is written."""
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        result = subprocess.run([*CLI, "inspect", str(world.scene.spot_image)], stdout=write_end,
                                stderr=subprocess.PIPE, text=True, timeout=300)  # fmt: skip
    finally:
        os.close(write_end)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""

"""Test labels never reach training: checkpoints record the labels/split they were trained on.

``fuse-classify train`` refuses a checkpoint of other labels/split (one line, exit 2, nothing
touched) and resumes one of the same data; ``fuse-classify run`` moves such checkpoints and S2
classifiers aside and trains again; the iota2 step takes a pretrained checkpoint only with its
split record.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from iota2_spot_s2.errors import InputError
from iota2_spot_s2.reference import TEST, TRAIN
from iota2_spot_s2.settings import PLUGIN_SECTION, format_cfg
from iota2_spot_s2.training import checkpoint_fingerprint as fp
from iota2_spot_s2.training import read_checkpoint
from tests.test_cli import assert_one_line_error, fuse_classify
from tests.test_cli_train import scene_files
from tests.test_training import make_scene

TINY = ("--crop", "32", "--batch-size", "2")


def test_fingerprint_changes_with_one_label_or_split_pixel_and_only_then() -> None:
    _, labels, split = make_scene(size=64)
    first = fp.data_fingerprint(labels, split, {"block_m": 24.0})
    assert fp.data_fingerprint(labels.copy(), split.copy())["sha256"] == first["sha256"]
    # the same codes in another integer type are the same data
    wide = fp.data_fingerprint(labels.astype(np.int64), split.astype(np.int32))
    assert wide["sha256"] == first["sha256"]
    one_label = labels.copy()
    one_label[40, 17] = 30 if one_label[40, 17] != 30 else 20
    assert fp.data_fingerprint(one_label, split)["sha256"] != first["sha256"]
    one_split = split.copy()
    one_split[3, 5] = TEST if one_split[3, 5] != TEST else TRAIN
    assert fp.data_fingerprint(labels, one_split)["sha256"] != first["sha256"]
    # the same bytes in another shape are other data
    assert (
        fp.labels_split_digest(labels.reshape(32, 128), split.reshape(32, 128)) != first["sha256"]
    )
    labelled = labels > 0
    assert first["pixels"] == {
        "labelled": int(labelled.sum()),
        "train": int((labelled & (split == 1)).sum()),
        "val": int((labelled & (split == 2)).sum()),
        "test": int((labelled & (split == 3)).sum()),
    }
    assert fp.same_data(first, fp.data_fingerprint(labels, split))
    assert not fp.same_data(None, first)


def _train(tmp_path: Path, out: Path, *extra: str) -> tuple[object, Path]:
    image, labels_path, _, _, _ = scene_files(tmp_path)
    result = fuse_classify("train", "--image", str(image), "--reference", str(labels_path),
                           "--out", str(out), *TINY, *extra)  # fmt: skip
    return result, labels_path


def test_train_refuses_a_checkpoint_of_another_split_and_touches_nothing(tmp_path: Path) -> None:
    out = tmp_path / "m" / "fcn.pt"
    first, _ = _train(tmp_path, out, "--block-m", "24", "--steps", "2")
    assert first.returncode == 0, first.stderr[-2000:]
    recorded = read_checkpoint(out)[fp.FINGERPRINT_KEY]
    assert recorded["provenance"]["block_m"] == 24.0 and recorded["pixels"]["test"] > 0
    before = out.read_bytes()
    split_before = (tmp_path / "m" / "fcn_reference" / "split.tif").read_bytes()
    for flags, word in ((("--block-m", "12"), "block_m"), (("--seed", "5"), "split_seed")):
        again, _ = _train(tmp_path, out, "--block-m", "24", *flags, "--steps", "4")
        line = assert_one_line_error(again, out)
        assert "other labels/split" in line and word in line and "--out" in line
        assert out.read_bytes() == before  # neither resumed nor overwritten
        assert (tmp_path / "m" / "fcn_reference" / "split.tif").read_bytes() == split_before
    assert sorted(p.name for p in out.parent.iterdir()) == [
        "fcn.pt", "fcn_curve.json", "fcn_curve.png", "fcn_reference",
    ]  # fmt: skip


def test_train_resumes_the_same_data_and_refuses_an_unrecorded_checkpoint(tmp_path: Path) -> None:
    out = tmp_path / "fcn.pt"
    first, _ = _train(tmp_path, out, "--block-m", "24", "--steps", "2")
    assert first.returncode == 0, first.stderr[-2000:]
    history = read_checkpoint(out)["history"]
    again, _ = _train(tmp_path, out, "--block-m", "24", "--steps", "4")
    assert again.returncode == 0, again.stderr[-2000:]
    state = read_checkpoint(out)
    assert state["step"] == 4 and state["history"][: len(history)] == history  # continued
    old = {k: v for k, v in state.items() if k != fp.FINGERPRINT_KEY}  # an older version's file
    torch.save(old, out)
    before = out.read_bytes()
    refused, _ = _train(tmp_path, out, "--block-m", "24", "--steps", "6")
    line = assert_one_line_error(refused, out)
    assert "no record" in line and out.read_bytes() == before


@pytest.fixture(scope="module")
def rerun_chain(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    """``fuse-classify run`` twice on a small simulated scene, ``split_block_m`` 24 then 48."""
    from iota2_spot_s2.simulation import generate_scene

    root = tmp_path_factory.mktemp("chain_fp")
    scene = generate_scene(root / "scene", size_m=240.0, seed=3)
    models = root / "out" / "spot_s2" / scene.tile / "models"
    before: dict[str, object] = {}
    runs = []
    for block_m in (24.0, 48.0):
        cfg = root / f"run_{int(block_m)}.cfg"
        cfg.write_text(format_cfg({
            "chain": {"output_path": str(root / "out"), "list_tile": scene.tile,
                      "ground_truth": str(scene.reference), "data_field": "code",
                      "s2_path": str(scene.sensor_data)},
            PLUGIN_SECTION: {"spot_images": {scene.tile: str(scene.spot_image)},
                             "models": ["fcn"], "strategies": ["spot", "s2-rf"],
                             "split_block_m": block_m, "simulated": True,
                             "training": {"epochs": 1, "iters_per_epoch": 1, "batch_size": 2,
                                          "crop": 64}},
        }))  # fmt: skip
        done = fuse_classify("run", str(cfg))
        assert done.returncode == 0, done.stderr[-3000:]
        runs.append(done)
        if not before:
            before = {name: (models / name).read_bytes() for name in ("fcn.pt", "s2_rf.joblib")}
    return {"models": models, "before": before, "stderr": runs[1].stderr}


def test_run_retrains_a_spot_checkpoint_after_the_split_changed(rerun_chain) -> None:
    models, before = rerun_chain["models"], rerun_chain["before"]
    old = fp.stored_fingerprint(_saved(before["fcn.pt"], models / "old.pt"))
    new = fp.stored_fingerprint(models / "fcn.pt")
    assert old is not None and new is not None and old["sha256"] != new["sha256"]
    assert (old["provenance"]["block_m"], new["provenance"]["block_m"]) == (24.0, 48.0)
    stale = models / f"fcn.stale-{old['sha256'][:8]}.pt"
    assert stale.read_bytes() == before["fcn.pt"]  # kept aside, untouched
    assert read_checkpoint(models / "fcn.pt")["step"] == 1  # from scratch: one step, not two
    lines = [line for line in rerun_chain["stderr"].splitlines() if "moved aside" in line]
    assert len(lines) == 2 and "block_m 24.0 -> 48.0" in lines[0]


def test_run_retrains_an_s2_classifier_after_the_split_changed(rerun_chain) -> None:
    from iota2_spot_s2.timeseries import load_classifier

    models, before = rerun_chain["models"], rerun_chain["before"]
    old = load_classifier(_saved(before["s2_rf.joblib"], models / "old.joblib"))
    new = load_classifier(models / "s2_rf.joblib")
    old_fp, new_fp = old.config[fp.FINGERPRINT_KEY], new.config[fp.FINGERPRINT_KEY]
    assert old_fp["sha256"] != new_fp["sha256"]
    assert new_fp["provenance"]["block_m"] == 48.0 and new_fp["provenance"]["grid"] == "sentinel2"
    stale = models / f"s2_rf.stale-{old_fp['sha256'][:8]}.joblib"
    assert stale.read_bytes() == before["s2_rf.joblib"]


def _saved(data: bytes, path: Path) -> Path:
    path.write_bytes(data)
    return path


def test_iota2_takes_a_pretrained_checkpoint_only_with_its_split_record(tmp_path: Path) -> None:
    from iota2_spot_s2.iota2.classify import _pretrained
    from iota2_spot_s2.training import train

    image, labels, split = make_scene(size=64)
    path = tmp_path / "pretrained.pt"
    with fp.provenance_of_training_data({"reference": "ref.gpkg", "block_m": 24.0}):
        train(image, labels, split, model_name="fcn", checkpoint_path=path, max_steps=1,
              model_kwargs={"widths": (4,), "bottleneck_blocks": 0}, crop=8, val_tile=16,
              batch_size=1, final_validation=False)  # fmt: skip
    recorded = fp.stored_fingerprint(path)
    assert recorded is not None and recorded["provenance"]["reference"] == "ref.gpkg"
    assert _pretrained(path) == path
    torch.save({k: v for k, v in read_checkpoint(path).items() if k != fp.FINGERPRINT_KEY}, path)
    with pytest.raises(InputError) as err:
        _pretrained(path)
    assert err.value.path == str(path) and "no record" in err.value.problem


def test_a_stale_checkpoint_without_fingerprint_is_named_by_its_bytes(tmp_path: Path) -> None:
    path = tmp_path / "fcn_seed_0.pt"
    path.write_bytes(b"older weights")
    _, labels, split = make_scene(size=32)
    current = fp.data_fingerprint(labels, split)
    moved = fp.retire(path, None, current)
    assert not path.exists() and moved.read_bytes() == b"older weights"
    assert moved.name.startswith("fcn_seed_0.stale-") and moved.suffix == ".pt"
    assert json.loads(json.dumps(current)) == current  # plain values only


def test_the_iota2_step_retrains_when_its_validation_polygons_appear(tmp_path: Path) -> None:
    from tests.test_iota2_plugin import TILE, tree_data

    tree = tree_data.build(tmp_path / "iota2")
    hidden = tree.val.with_name("not_yet.sqlite")
    tree.val.rename(hidden)  # a first run before iota2 drew its validation polygons
    first = fuse_classify("iota2", "step", str(tree.cfg))
    assert first.returncode == 0, first.stderr[-3000:]
    checkpoint = tree.output / "spot_s2" / TILE / "models" / "fcn_seed_0.pt"
    old, before = fp.stored_fingerprint(checkpoint), checkpoint.read_bytes()
    assert old is not None and old["provenance"]["holdout"] is None
    hidden.rename(tree.val)
    second = fuse_classify("iota2", "step", str(tree.cfg))
    assert second.returncode == 0, second.stderr[-3000:]
    new = fp.stored_fingerprint(checkpoint)
    assert new is not None and new["provenance"]["holdout"] == str(tree.val)
    assert new["pixels"]["test"] > old["pixels"]["test"]  # the polygons' pixels left training
    stale = checkpoint.with_name(f"fcn_seed_0.stale-{old['sha256'][:8]}.pt")
    assert stale.read_bytes() == before
    assert sum("moved aside" in line for line in second.stderr.splitlines()) == 1
    # a pretrained checkpoint without its split record is not used to predict
    unrecorded = tmp_path / "pretrained.pt"
    torch.save({k: v for k, v in read_checkpoint(stale).items() if k != fp.FINGERPRINT_KEY},
               unrecorded)  # fmt: skip
    sections = tree_data._sections(tree.scene, tree.output)
    sections[PLUGIN_SECTION]["checkpoint"] = str(unrecorded)
    cfg = tmp_path / "pretrained.cfg"
    cfg.write_text(format_cfg(sections))
    refused = fuse_classify("iota2", "step", str(cfg))
    assert refused.returncode == 2 and "Traceback" not in refused.stderr
    errors = [line for line in refused.stderr.splitlines() if "error" in line]
    assert len(errors) == 1 and "fuse-classify: error: " in errors[0]  # after a progress bar
    assert str(unrecorded) in errors[0] and "no record" in errors[0]

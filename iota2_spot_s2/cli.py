"""``fuse-classify``: thin commands over the library's public functions.

Every command maps to one call a Python user can make directly (see each handler). Bad input
raises :class:`~iota2_spot_s2.errors.InputError`, printed here as one line
``fuse-classify: error: <path>: <problem>`` with exit status 2, never a traceback.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from iota2_spot_s2 import __version__
from iota2_spot_s2.argtypes import checked, device, positive_float, positive_int
from iota2_spot_s2.errors import InputError

EXIT_INPUT_ERROR = 2


def _cmd_inspect(args: argparse.Namespace) -> int:
    from iota2_spot_s2.sensors import inspect_path

    info = inspect_path(args.path, field=args.field, product=args.product)
    print(json.dumps(info, indent=2, default=str))
    return 0


def _cmd_simulate(args: argparse.Namespace) -> int:
    from iota2_spot_s2.simulation import generate_scene

    scene = generate_scene(Path(args.out), size_m=args.size_m, seed=args.seed)
    print(f"simulated scene written to {scene.root} (seed {args.seed})")
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    from iota2_spot_s2.pipeline import run_demo

    run_demo(
        Path(args.out),
        seed=args.seed,
        size_m=args.size_m,
        minutes_per_model=args.minutes,
        models=tuple(args.models.split(",")),
        strategies=tuple(args.strategies.split(",")),
        model_steps=_steps_spec(args.steps, args.minutes),
    )
    return 0


def _steps_spec(text: str | None, minutes: float | None) -> dict[str, int] | None:
    """``--steps``: ``N`` for every network or ``fcn=N,patch_cnn=M``; None = the demo's."""
    if text is None:
        return {} if minutes is not None else None
    out: dict[str, int] = {}
    for part in text.split(","):
        name, _, value = part.rpartition("=")
        try:
            count = int(value)
        except ValueError:
            count = 0
        if count < 1:
            raise InputError("--steps", f"expected N or name=N with N >= 1, got {part!r}")
        for model in [name] if name else ["fcn", "patch_cnn", "early_fusion"]:
            out[model] = count
    return out


def _cmd_run(args: argparse.Namespace) -> int:
    from iota2_spot_s2.pipeline import run_chain
    from iota2_spot_s2.settings import load_config

    run_chain(load_config(args.config))
    return 0


def _cmd_train(args: argparse.Namespace) -> int:
    from iota2_spot_s2.pipeline import train_from_files

    _log_off_terminal()
    result = train_from_files(
        image=Path(args.image),
        reference=Path(args.reference),
        field=args.field,
        model_name=args.model,
        checkpoint=Path(args.out),
        epochs=args.epochs,
        max_minutes=args.minutes,
        max_steps=args.steps,
        seed=args.seed,
        block_m=args.block_m,
        split=Path(args.split) if args.split else None,
        val_reference=Path(args.val_reference) if args.val_reference else None,
        ignore_label=args.ignore_label,
        batch_size=args.batch_size,
        crop=args.crop,
        lr=args.lr,
        schedule=args.schedule,
        class_weighting=args.class_weighting,
        class_balanced=args.class_balanced,
        val_max_pixels=args.val_pixels or None,
        bf16=args.bf16,
        device=args.device,
    )
    final = result.final_validation
    tail = f"; every VAL pixel: mean F1 {final['mean_f1']:.3f}" if final else ""
    print(
        f"stopped ({result.stop_reason}): best validation mean F1 {result.best_val_mean_f1:.3f} "
        f"at round {result.best_epoch}{tail}; checkpoint {result.checkpoint_path}"
    )
    return 0


def _log_off_terminal() -> None:
    """Off a terminal (no progress bar), log one line per training round to stderr."""
    import logging

    if not sys.stderr.isatty():
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", force=True)


def _cmd_predict(args: argparse.Namespace) -> int:
    from iota2_spot_s2.pipeline import predict_from_files

    outputs = predict_from_files(
        checkpoint=Path(args.checkpoint),
        image=Path(args.image),
        out_dir=Path(args.out),
        tile=args.tile,
        mode=args.mode,
        write_proba=args.proba,
        nomenclature_path=Path(args.nomenclature) if args.nomenclature else None,
        color_path=Path(args.colors) if args.colors else None,
        prefix=args.prefix,
        bf16=args.bf16,
        device=args.device,
    )
    resumed = f"; resumed, {outputs.resumed_tiles} tiles kept" if outputs.resumed_tiles else ""
    print(f"class map {outputs.class_map} ({outputs.pixels_per_second / 1e6:.2f} Mpx/s{resumed})")
    return 0


def _cmd_evaluate(args: argparse.Namespace) -> int:
    from iota2_spot_s2.pipeline import evaluate_from_files

    if args.subset and not args.split:
        raise InputError("--subset", "needs --split (the raster saying which pixels are which)")
    scores = evaluate_from_files(
        reference=Path(args.reference),
        produced=Path(args.map),
        out_dir=Path(args.out),
        field=args.field,
        split=Path(args.split) if args.split else None,
        subset=args.subset or "test",
        title=args.title,
        bootstrap_block=args.bootstrap_block,
    )
    print(
        f"OA {scores.overall_accuracy:.4f}  kappa {scores.kappa:.4f}  mean F1 {scores.mean_f1:.4f}"
    )
    return 0


def _cmd_iota2_step(args: argparse.Namespace) -> int:
    from iota2_spot_s2.iota2 import run_step
    from iota2_spot_s2.settings import load_config

    for done in run_step(load_config(args.config), tiles=args.tile):
        print(f"{done.tile} seed {done.seed}: {done.classif['classes']}")
    return 0


def _cmd_iota2_features(args: argparse.Namespace) -> int:
    from iota2_spot_s2.iota2 import feature_fusion
    from iota2_spot_s2.settings import load_config

    route = feature_fusion(load_config(args.config), tiles=args.tile, seed=args.seed)
    for tile, files in route.files.items():
        print(f"{tile}: " + ", ".join(str(p) for p in files.values()))
    print(f"iota2 cfg registering them: {route.cfg}")
    return 0


def _cmd_iota2_fuse(args: argparse.Namespace) -> int:
    from iota2_spot_s2.iota2 import decision_fusion
    from iota2_spot_s2.settings import load_config

    for done in decision_fusion(load_config(args.config), tiles=args.tile, rule=args.rule):
        print(f"{done.tile} seed {done.seed} ({done.rule}, iota2 {done.iota2_source}, "
              f"masses from {done.validation}): {done.paths['classes']}")  # fmt: skip
        for name, sc in done.scores.items():
            print(f"  {name:6s} OA {sc['overall_accuracy']:.4f}  kappa {sc['kappa']:.4f}  "
                  f"mean F1 {sc['mean_f1']:.4f}  ({sc['pixels']} test px)")  # fmt: skip
    return 0


def _cmd_iota2_check(args: argparse.Namespace) -> int:
    from iota2_spot_s2.iota2 import check_cfg_paths
    from iota2_spot_s2.iota2.cfg import generation_line
    from iota2_spot_s2.settings import load_config

    for name, path in check_cfg_paths(args.config):
        print(f"{name}: {path}")
    load_config(args.config)
    print(generation_line(args.config))
    print(f"{args.config}: every path exists; the spot_s2_fusion section is valid")
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``fuse-classify`` (one sub-command per stage)."""
    parser = argparse.ArgumentParser(
        prog="fuse-classify",
        description="Land-cover maps from SPOT 6/7 and Sentinel-2 with FCNs (iota2-compatible).",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("inspect", help="describe an input (Theia L2A, sensor_data, SPOT, vector)")
    p.add_argument("path")
    p.add_argument("--field", help="vector field whose distinct values are listed")
    p.add_argument("--product", choices=("FRE", "SRE"), default="FRE")
    p.set_defaults(func=_cmd_inspect)

    p = sub.add_parser("demo", help="simulated scene: train patch_cnn and fcn, map, evaluate")
    p.add_argument("--out", default="demo_output")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--size-m", type=_scene_size, default=1536.0,
                   help="side of the simulated square (m, 120-20000)")
    p.add_argument("--steps", default=None,
                   help="step budget per network: N, or fcn=N,patch_cnn=M,early_fusion=K "
                   "(default fcn=160,patch_cnn=18,early_fusion=120: same table on any machine)")
    p.add_argument("--minutes", type=_positive_float, default=None,
                   help="time budget per network instead (with --steps: the first reached)")
    p.add_argument("--models", default="patch_cnn,fcn", help="SPOT models of the 'spot' strategy")
    p.add_argument(
        "--strategies",
        default="spot,s2-rf,s2-tempcnn,early,late-mean,late-weighted_mean,late-product,late-vote,"
        "late-dempster_shafer",
        help="comma-separated: spot, s2-rf, s2-tempcnn, early, late-<rule>",
    )
    p.set_defaults(func=_cmd_demo)

    p = sub.add_parser("simulate", help="write the simulated landscape only")
    p.add_argument("--out", required=True)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--size-m", type=_scene_size, default=1536.0)
    p.set_defaults(func=_cmd_simulate)

    p = sub.add_parser("run", help="run the chain described by an iota2 cfg file")
    p.add_argument("config")
    p.set_defaults(func=_cmd_run)

    _add_stage_parsers(sub)
    _add_iota2_parsers(sub)
    _add_analysis_parsers(sub)
    return parser


def _add_analysis_parsers(sub: argparse._SubParsersAction) -> None:
    from iota2_spot_s2.analysis import complementarity_cli, nomenclature_cli

    complementarity_cli.add_parser(sub)
    nomenclature_cli.add_parser(sub)


def _add_iota2_parsers(sub: argparse._SubParsersAction) -> None:
    from iota2_spot_s2.settings import LATE_RULES

    group = sub.add_parser("iota2", help="iota2 plugin: the FCN step, feature and decision fusion")
    routes = group.add_subparsers(dest="route", required=True)
    handlers = {
        "step": (_cmd_iota2_step, "SPOT FCN per tile into spot_s2/classif/ (iota2 names)"),
        "features": (_cmd_iota2_features, "feature level: SPOT userFeat tree + cfg registering it"),
        "fuse": (_cmd_iota2_fuse, "decision level: iota2's classif/ fused with the SPOT FCN's"),
        "check": (_cmd_iota2_check, "check every path and the plugin section of an iota2 cfg"),
    }
    for name, (func, text) in handlers.items():
        p = routes.add_parser(name, help=text)
        p.add_argument("config", help="iota2 cfg file with a spot_s2_fusion section")
        if name != "check":
            p.add_argument("--tile", action="append", help="only this tile (repeatable)")
        if name == "features":
            p.add_argument("--seed", type=int, default=0, help="seed of the FCN to use")
        if name == "fuse":
            p.add_argument(
                "--rule", choices=LATE_RULES, help="late-fusion rule (default: decision_rule)"
            )
        p.set_defaults(func=func)


def _add_stage_parsers(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "train",
        help="train a model on an image and a reference (vector or raster)",
        description="Train a segmentation model. Labels and split are written to "
        "<OUT stem>_reference/ beside the checkpoint; rerunning the same command resumes "
        "from the checkpoint. Training stops at the first budget reached (--steps, --minutes, "
        "--epochs) and keeps the weights of the best validation mean F1.",
    )
    p.add_argument("--image", required=True, help="image to train on (GeoTIFF, DIMAP, ...)")
    p.add_argument("--reference", required=True,
                   help="labels: a vector (GeoPackage/Shapefile, codes in --field) or a label "
                   "raster on the image grid (its nodata tag and --ignore-label are no-data)")
    p.add_argument("--field", default="code", help="vector field holding the class codes")
    p.add_argument("--model", default="fcn", choices=("fcn", "patch_cnn"),
                   help="network: fcn (U-Net/SegNet FCN) or patch_cnn (65 px patch baseline)")
    p.add_argument("--out", required=True, help="checkpoint file (.pt); resumed if present")
    p.add_argument("--epochs", type=_positive_int, default=300,
                   help="maximum number of rounds (a round ends with a validation)")
    p.add_argument("--minutes", type=_positive_float, default=None,
                   help="time budget, counted over resumed runs")
    p.add_argument("--steps", type=_positive_int, default=None,
                   help="optimiser-step budget: same result on any machine for a seed")
    p.add_argument("--seed", type=int, default=0, help="seed of weights, batches and split")
    p.add_argument("--block-m", type=_positive_float, default=96.0,
                   help="side of the 64/16/20 split blocks, in metres")
    group = p.add_mutually_exclusive_group()
    group.add_argument("--split", help="your split raster on the image grid "
                       "(1 train, 2 validation, 3 test, 0 unused) instead of the block split")
    group.add_argument("--val-reference", help="validation polygons (or raster): their pixels "
                       "validate, every other labelled pixel trains")
    p.add_argument("--ignore-label", type=int, default=None,
                   help="label code to ignore (no-data) besides 0 and the raster's nodata")
    p.add_argument("--batch-size", type=_positive_int, default=8, help="crops per step")
    p.add_argument("--crop", type=_positive_int, default=128,
                   help="crop side in pixels (a multiple of the model's downsampling)")
    p.add_argument("--lr", type=_positive_float, default=1e-3, help="peak Adam learning rate")
    p.add_argument("--schedule", choices=("cosine", "step", "constant"), default="cosine",
                   help="LR schedule: cosine over the budget, step (x0.7 every 50 passes), "
                   "constant")
    p.add_argument("--class-weighting", default="median_frequency",
                   choices=("median_frequency", "inverse_sqrt", "none"),
                   help="class weights of the cross-entropy")
    p.add_argument("--class-balanced", action="store_true",
                   help="draw crop centres class by class (helps rare classes)")
    p.add_argument("--val-pixels", type=int, default=500_000,
                   help="labelled VAL pixels scored after each round (fixed seeded subset; "
                   "0 = all); every VAL pixel is scored once at the end")
    p.add_argument("--bf16", action="store_true",
                   help="bf16 autocast (faster only on CPUs/GPUs with bf16 units)")
    p.add_argument("--device", type=device, default="cpu",
                   help="cpu, cuda, cuda:N or auto (CUDA when available)")
    p.set_defaults(func=_cmd_train)

    p = sub.add_parser("predict", help="map a whole image tile by tile")
    p.add_argument("--checkpoint", required=True)
    p.add_argument("--image", required=True)
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--tile", type=_tile_size, default=512,
                   help="tile core side in pixels (>= 64; the map does not depend on it)")
    p.add_argument("--mode", choices=("dense", "per_pixel"), default="dense")
    p.add_argument("--proba", action="store_true", help="also write probabilities (0-1000)")
    p.add_argument("--nomenclature", help="iota2 nomenclature.txt")
    p.add_argument("--colors", help="iota2 colorFile.txt")
    p.add_argument("--prefix", type=_file_prefix, default="map",
                   help="output file-name prefix (a plain name: outputs stay in --out)")
    p.add_argument("--bf16", action="store_true", help="bf16 autocast (faster, ~99%% agreement)")
    p.add_argument("--device", type=device, default="cpu",
                   help="cpu, cuda, cuda:N or auto (CUDA when available)")
    p.set_defaults(func=_cmd_predict)

    p = sub.add_parser("evaluate", help="score a class map against a reference")
    p.add_argument("--map", required=True)
    p.add_argument("--reference", required=True, help="reference raster or vector")
    p.add_argument("--field", default="code")
    p.add_argument("--split", help="split raster (1 train, 2 validation, 3 test)")
    p.add_argument("--subset", choices=("train", "validation", "test"), default=None,
                   help="pixels of the split to score (default with --split: test)")
    p.add_argument("--out", required=True)
    p.add_argument("--title", default=None)
    p.add_argument("--bootstrap-block", type=_positive_int, default=None, metavar="PX",
                   help="add 95%% block-bootstrap intervals (blocks of PX pixels) to the JSON")
    p.set_defaults(func=_cmd_evaluate)


_positive_int = positive_int
_positive_float = positive_float
_tile_size = checked(int, lambda v: v >= 64, "at least 64 pixels")
_scene_size = checked(float, lambda v: 120 <= v <= 20_000, "within 120-20000 m")


def _file_prefix(text: str) -> str:
    if not text or Path(text).name != text or text in (".", ".."):
        raise argparse.ArgumentTypeError(f"must be a plain file-name prefix, got {text!r}")
    return text


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``fuse-classify``; returns the exit status."""
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except InputError as exc:
        print(f"fuse-classify: error: {exc}", file=sys.stderr)
        return EXIT_INPUT_ERROR
    except KeyboardInterrupt:
        print("fuse-classify: interrupted; rerun the same command to resume", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `fuse-classify inspect ... | head`: the reader left, not an error
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 (silence the flush at exit)
        return 0


if __name__ == "__main__":
    sys.exit(main())

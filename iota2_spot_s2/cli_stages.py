"""``fuse-classify train``, ``predict`` and ``evaluate``: one call each into the pipeline stages."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from iota2_spot_s2.argtypes import checked, device, positive_float, positive_int, scheduler
from iota2_spot_s2.devices import PRECISIONS
from iota2_spot_s2.errors import InputError
from iota2_spot_s2.inference.tiling import DEFAULT_TILE

if TYPE_CHECKING:
    from iota2_spot_s2.settings import RunConfig

TILE_SIZE = checked(int, lambda v: v >= 64, "at least 64 pixels")


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
        precision=_precision(args),
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

    if not sys.stderr.isatty():  # our loggers only: GDAL's own messages would double the errors
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(asctime)s %(message)s"))
        logger = logging.getLogger("iota2_spot_s2")
        logger.setLevel(logging.INFO)
        logger.addHandler(handler)


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
        precision=_precision(args),
        device=args.device,
        scheduler=args.scheduler,
        workers=args.workers,
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


def add_parsers(sub: argparse._SubParsersAction) -> None:
    """Register ``train``, ``predict`` and ``evaluate`` on ``fuse-classify``'s sub-parsers."""
    p = sub.add_parser(
        "train",
        help="train a model on an image and a reference (vector or raster)",
        description="Train a segmentation model. Labels and split are written to "
        "<OUT stem>_reference/ beside the checkpoint; rerunning the same command resumes "
        "from the checkpoint. Training stops at the first budget reached (--steps, --minutes, "
        "--epochs) and keeps the weights of the best validation mean F1.",
    )
    p.add_argument("--image", required=True, help="image to train on (GeoTIFF, DIMAP, ...)")
    p.add_argument(
        "--reference",
        required=True,
        help="labels: a vector (GeoPackage/Shapefile, codes in --field) or a label "
        "raster on the image grid (its nodata tag and --ignore-label are no-data)",
    )
    p.add_argument("--field", default="code", help="vector field holding the class codes")
    p.add_argument(
        "--model",
        default="fcn",
        choices=("fcn", "patch_cnn"),
        help="network: fcn (U-Net/SegNet FCN) or patch_cnn (65 px patch baseline)",
    )
    p.add_argument("--out", required=True, help="checkpoint file (.pt); resumed if present")
    p.add_argument(
        "--epochs",
        type=positive_int,
        default=300,
        help="maximum number of rounds (a round ends with a validation)",
    )
    p.add_argument(
        "--minutes",
        type=positive_float,
        default=None,
        help="time budget, counted over resumed runs",
    )
    p.add_argument(
        "--steps",
        type=positive_int,
        default=None,
        help="optimiser-step budget: same result on any machine for a seed",
    )
    p.add_argument("--seed", type=int, default=0, help="seed of weights, batches and split")
    p.add_argument(
        "--block-m",
        type=positive_float,
        default=96.0,
        help="side of the 64/16/20 split blocks, in metres",
    )
    group = p.add_mutually_exclusive_group()
    group.add_argument(
        "--split",
        help="your split raster on the image grid "
        "(1 train, 2 validation, 3 test, 0 unused) instead of the block split",
    )
    group.add_argument(
        "--val-reference",
        help="validation polygons (or raster): their pixels "
        "validate, every other labelled pixel trains",
    )
    p.add_argument(
        "--ignore-label",
        type=int,
        default=None,
        help="label code to ignore (no-data) besides 0 and the raster's nodata",
    )
    p.add_argument("--batch-size", type=positive_int, default=8, help="crops per step")
    p.add_argument(
        "--crop",
        type=positive_int,
        default=128,
        help="crop side in pixels (a multiple of the model's downsampling)",
    )
    p.add_argument("--lr", type=positive_float, default=1e-3, help="peak Adam learning rate")
    p.add_argument(
        "--schedule",
        choices=("cosine", "step", "constant"),
        default="cosine",
        help="LR schedule: cosine over the budget, step (x0.7 every 50 passes), constant",
    )
    p.add_argument(
        "--class-weighting",
        default="median_frequency",
        choices=("median_frequency", "inverse_sqrt", "none"),
        help="class weights of the cross-entropy",
    )
    p.add_argument(
        "--class-balanced",
        action="store_true",
        help="draw crop centres class by class (helps rare classes)",
    )
    p.add_argument(
        "--val-pixels",
        type=int,
        default=500_000,
        help="labelled VAL pixels scored after each round (fixed seeded subset; "
        "0 = all); every VAL pixel is scored once at the end",
    )
    add_precision_arguments(p, "training's forward pass", ", with a gradient scaler")
    p.add_argument(
        "--device",
        type=device,
        default="cpu",
        help="cpu, cuda, cuda:N or auto (CUDA when available)",
    )
    p.set_defaults(func=_cmd_train)

    p = sub.add_parser("predict", help="map a whole image tile by tile")
    p.add_argument("--checkpoint", required=True)
    p.add_argument("--image", required=True)
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument(
        "--tile",
        type=TILE_SIZE,
        default=DEFAULT_TILE,
        help=f"tile core side in pixels (>= 64, default {DEFAULT_TILE}; the map does not depend "
        "on it, memory does: ~2.4 GiB at 1024, ~0.9 at 512; with --bf16 on scenes of 16k x 16k "
        "px or more, 2048 maps 4-14%% faster for ~3.1 GiB)",
    )
    p.add_argument("--mode", choices=("dense", "per_pixel"), default="dense")
    p.add_argument("--proba", action="store_true", help="also write probabilities (0-1000)")
    p.add_argument("--nomenclature", help="iota2 nomenclature.txt")
    p.add_argument("--colors", help="iota2 colorFile.txt")
    p.add_argument(
        "--prefix",
        type=file_prefix,
        default="map",
        help="output file-name prefix (a plain name: outputs stay in --out)",
    )
    add_precision_arguments(p, "network")
    p.add_argument(
        "--device",
        type=device,
        default="cpu",
        help="cpu, cuda, cuda:N or auto (CUDA when available)",
    )
    add_cluster_arguments(p)
    p.set_defaults(func=_cmd_predict)

    p = sub.add_parser("evaluate", help="score a class map against a reference")
    p.add_argument("--map", required=True)
    p.add_argument("--reference", required=True, help="reference raster or vector")
    p.add_argument("--field", default="code")
    p.add_argument("--split", help="split raster (1 train, 2 validation, 3 test)")
    p.add_argument(
        "--subset",
        choices=("train", "validation", "test"),
        default=None,
        help="pixels of the split to score (default with --split: test)",
    )
    p.add_argument("--out", required=True)
    p.add_argument("--title", default=None)
    p.add_argument(
        "--bootstrap-block",
        type=positive_int,
        default=None,
        metavar="PX",
        help="add 95%% block-bootstrap intervals (blocks of PX pixels) to the JSON",
    )
    p.set_defaults(func=_cmd_evaluate)


def add_precision_arguments(p: argparse.ArgumentParser, what: str, fp16_note: str = "") -> None:
    """``--precision fp32|bf16|fp16`` and its older alias ``--bf16`` (one of them)."""
    arithmetic = p.add_mutually_exclusive_group()
    arithmetic.add_argument(
        "--precision",
        choices=PRECISIONS,
        default="fp32",
        help=f"arithmetic of the {what}: fp32 (default); bf16 autocast (~2x faster on CPUs and "
        "GPUs with bf16 units; ~99%% of map pixels agree with fp32); fp16 autocast (CUDA GPUs "
        f"without bf16: V100, T4{fp16_note}; refused on a CPU)",
    )
    arithmetic.add_argument("--bf16", action="store_true", help="same as --precision bf16")


def _precision(args: argparse.Namespace) -> str:
    """``--precision`` (``--bf16``: bf16), refused where it does not suit ``--device``."""
    from iota2_spot_s2.devices import check_precision, resolve_device

    precision = "bf16" if args.bf16 else args.precision
    try:
        return check_precision(precision, resolve_device(args.device))
    except ValueError as err:
        raise InputError(f"--precision {precision}", str(err)) from None


def add_cluster_arguments(p: argparse.ArgumentParser, cfg: bool = False) -> None:
    """``--scheduler`` / ``--workers`` of every sub-command that makes maps (dask tile tasks).

    ``cfg``: the command reads an iota2 cfg, whose ``spot_s2_fusion.scheduler`` / ``workers``
    they replace (:func:`with_cluster`).
    """
    default = "the cfg's spot_s2_fusion.scheduler, else one process" if cfg else "one process"
    p.add_argument(
        "--scheduler",
        type=scheduler,
        default=None,
        help=f"map as dask tile tasks: 'local', tcp://host:8786 or a scheduler.json "
        f"(default: {default})",
    )
    p.add_argument(
        "--workers",
        type=positive_int,
        default=None,
        help="worker processes of a local cluster (alone it means --scheduler local)",
    )


def cluster_options(args: argparse.Namespace) -> dict[str, str | int]:
    """The ``--scheduler`` / ``--workers`` given on the command line, by cfg key."""
    return {k: getattr(args, k) for k in ("scheduler", "workers") if getattr(args, k) is not None}


def with_cluster(run: RunConfig, args: argparse.Namespace) -> RunConfig:
    """``run`` with ``--scheduler`` / ``--workers`` in place of the cfg's keys, when given.

    Each value was checked by its argument type; the cfg's own keys by the settings schema.
    """
    given = cluster_options(args)
    if not given:
        return run
    return run.model_copy(update={"plugin": run.plugin.model_copy(update=given)})


def file_prefix(text: str) -> str:
    """A plain file-name prefix (no folder part), for ``--prefix``."""
    if not text or Path(text).name != text or text in (".", ".."):
        raise argparse.ArgumentTypeError(f"must be a plain file-name prefix, got {text!r}")
    return text

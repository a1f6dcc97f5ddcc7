"""``fuse-classify``: thin commands over the library's public functions.

Every command maps to one call a Python user can make directly (see each handler). Bad input
raises :class:`~iota2_spot_s2.errors.InputError`, printed here as one line
``fuse-classify: error: <path>: <problem>`` with exit status 2, never a traceback.
"""

from __future__ import annotations

import argparse
import errno
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import NoReturn

from iota2_spot_s2 import __version__
from iota2_spot_s2.argtypes import checked, positive_float
from iota2_spot_s2.cli_stages import add_cluster_arguments, cluster_options, with_cluster
from iota2_spot_s2.errors import InputError

EXIT_INPUT_ERROR = 2


class OneLineParser(argparse.ArgumentParser):
    """An argument parser whose errors are one line (no usage block), exit status 2."""

    def error(self, message: str) -> NoReturn:
        """Print ``<prog>: error: <message> (see <prog> --help)`` and exit with status 2."""
        self.exit(EXIT_INPUT_ERROR, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _cmd_inspect(args: argparse.Namespace) -> int:
    from iota2_spot_s2.sensors import inspect_path

    info = inspect_path(args.path, field=args.field, product=args.product)
    print(json.dumps(info, indent=2, default=str))
    return 0


def _cmd_simulate(args: argparse.Namespace) -> int:
    from iota2_spot_s2.io import undo_on_failure, written_or_refused
    from iota2_spot_s2.simulation import generate_scene

    out = Path(args.out)
    with written_or_refused(out, "the scene"), undo_on_failure(out):
        scene = generate_scene(out, size_m=args.size_m, seed=args.seed)
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
        cluster=cluster_options(args),
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

    run_chain(with_cluster(load_config(args.config), args))
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``fuse-classify`` (one sub-command per stage)."""
    parser = OneLineParser(
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
    p.add_argument(
        "--size-m",
        type=_scene_size,
        default=1536.0,
        help="side of the simulated square (m, 120-20000)",
    )
    p.add_argument(
        "--steps",
        default=None,
        help="step budget per network: N, or fcn=N,patch_cnn=M,early_fusion=K "
        "(default fcn=160,patch_cnn=18,early_fusion=120: same table on any machine)",
    )
    p.add_argument(
        "--minutes",
        type=_positive_float,
        default=None,
        help="time budget per network instead (with --steps: the first reached)",
    )
    p.add_argument("--models", default="patch_cnn,fcn", help="SPOT models of the 'spot' strategy")
    p.add_argument(
        "--strategies",
        default="spot,s2-rf,s2-tempcnn,early,late-mean,late-weighted_mean,late-product,late-vote,"
        "late-dempster_shafer",
        help="comma-separated: spot, s2-rf, s2-tempcnn, early, late-<rule>",
    )
    add_cluster_arguments(p)
    p.set_defaults(func=_cmd_demo)

    p = sub.add_parser("simulate", help="write the simulated landscape only")
    p.add_argument("--out", required=True)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--size-m", type=_scene_size, default=1536.0)
    p.set_defaults(func=_cmd_simulate)

    p = sub.add_parser("run", help="run the chain described by an iota2 cfg file")
    p.add_argument("config")
    add_cluster_arguments(p, cfg=True)
    p.set_defaults(func=_cmd_run)

    _add_stage_parsers(sub)
    _add_iota2_parsers(sub)
    _add_analysis_parsers(sub)
    return parser


def _add_stage_parsers(sub: argparse._SubParsersAction) -> None:
    from iota2_spot_s2 import cli_stages as stages_cli

    stages_cli.add_parsers(sub)


def _add_iota2_parsers(sub: argparse._SubParsersAction) -> None:
    from iota2_spot_s2 import cli_iota2 as iota2_cli

    iota2_cli.add_parser(sub)


def _add_analysis_parsers(sub: argparse._SubParsersAction) -> None:
    from iota2_spot_s2 import cli_product as product_cli
    from iota2_spot_s2.analysis import complementarity_cli, nomenclature_cli

    complementarity_cli.add_parser(sub)
    nomenclature_cli.add_parser(sub)
    product_cli.add_parser(sub)


_positive_float = positive_float
_scene_size = checked(float, lambda v: 120 <= v <= 20_000, "within 120-20000 m")


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``fuse-classify``; returns the exit status.

    Bad input (:class:`InputError`) and outputs the system refuses (a file where a folder is
    needed, a read-only folder, a full disk: :class:`OSError`) are one stderr line, status 2.
    Off a terminal, progress bars are off (a log or a pipe gets lines, not bars).
    """
    args = build_parser().parse_args(argv)
    if not sys.stderr.isatty():
        os.environ.setdefault("TQDM_DISABLE", "1")
    _quiet_gdal()
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
    except OSError as exc:  # the system refused a path: the user can fix it, no traceback
        print(f"fuse-classify: error: {_os_error_line(exc)}", file=sys.stderr)
        return EXIT_INPUT_ERROR


def _quiet_gdal() -> None:
    """GDAL's messages (logged by rasterio) stay off stderr: its errors reach us as exceptions.

    Without a handler, Python's last-resort handler would print each libtiff complaint
    (``_tiffWriteProc: File too large.``) beside our one error line.
    """
    import logging

    logger = logging.getLogger("rasterio")
    logger.addHandler(logging.NullHandler())
    logger.propagate = False


def _os_error_line(exc: OSError) -> str:
    """``<path>: <problem>`` for an :class:`OSError` (its first line when it names no file)."""
    from iota2_spot_s2.io.atomic import WRITE_ERRNOS, write_problem

    if exc.filename is None:
        text = str(exc).strip()
        return text.splitlines()[0] if text else type(exc).__name__
    writing = WRITE_ERRNOS - {errno.EACCES, errno.EPERM, errno.EISDIR}  # these also hit reads
    problem = write_problem(exc) if exc.errno in writing else (exc.strerror or str(exc))
    return f"{exc.filename}: {problem}"


if __name__ == "__main__":
    sys.exit(main())

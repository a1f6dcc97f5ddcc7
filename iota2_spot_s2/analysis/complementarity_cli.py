"""``fuse-classify complementarity``: the per-class sensor complementarity report from files.

Two routes (see :mod:`.complementarity_inputs`): ``--run OUTPUT_PATH`` takes every tile of a
``fuse-classify run`` output tree; ``--reference`` with ``--map NAME=PATH`` (repeated) takes any
maps the user names. The report goes to ``--out`` (default: each tile folder for ``--run``).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from iota2_spot_s2.argtypes import name_and_path, open_fraction, positive_int
from iota2_spot_s2.errors import InputError


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Register the ``complementarity`` sub-command."""
    p = sub.add_parser(
        "complementarity",
        help="per-class report: which classes gain from SPOT, Sentinel-2, or only from fusion",
        description="Scores SPOT-only, S2-only and fused maps on the same test pixels; per class: "
        "F1/PA/UA, F1 differences with spatial block-bootstrap intervals, Holm-corrected McNemar "
        "tests, Shapley values, F1 by object size / boundary distance / clear dates, a verdict.",
    )
    p.add_argument(
        "--run",
        default=None,
        metavar="OUTPUT_PATH",
        help="chain.output_path of a `fuse-classify run` (every tile is analysed)",
    )
    p.add_argument(
        "--spot-model",
        default="fcn",
        help="with --run: the SPOT model whose map stands for SPOT (default fcn)",
    )
    p.add_argument("--reference", default=None, help="reference raster or vector")
    p.add_argument("--field", default="code", help="class field of a vector reference")
    p.add_argument(
        "--map",
        action="append",
        type=name_and_path,
        default=[],
        metavar="SOURCES[:LABEL]=PATH",
        help="a class map and the sources it used: spot=…, s2=…, spot+s2:ds=… "
        "(repeat; the first map of each source set is the one the verdict uses)",
    )
    p.add_argument(
        "--choice",
        action="append",
        type=name_and_path,
        default=[],
        metavar="NAME=PATH",
        help="DSchoice-like map of the fused map NAME",
    )
    p.add_argument("--split", default=None, help="split raster (1/2/3 = train/validation/test)")
    p.add_argument(
        "--subset",
        choices=("train", "validation", "test"),
        default=None,
        help="pixels scored (needs --split; default test)",
    )
    p.add_argument("--clear-dates", default=None, help="raster of cloud-free S2 dates per pixel")
    p.add_argument("--nomenclature", default=None, help="iota2 nomenclature.txt (class names)")
    p.add_argument(
        "--data",
        choices=("real", "simulated"),
        default=None,
        help="what the maps were made from (required with --reference)",
    )
    p.add_argument(
        "--out",
        default=None,
        help="output folder (default: each tile folder with --run, ./complementarity otherwise)",
    )
    p.add_argument(
        "--block-px",
        type=positive_int,
        default=64,
        help="side of the bootstrap blocks in pixels (default 64)",
    )
    p.add_argument("--n-boot", type=positive_int, default=1000, help="bootstrap resamples")
    p.add_argument("--seed", type=int, default=0, help="seed of the block draws")
    p.add_argument("--alpha", type=open_fraction, default=0.05, help="significance level")
    p.set_defaults(func=run_command)


def run_command(args: argparse.Namespace) -> int:
    """Check the arguments, analyse, write the report, print the ranked table."""
    from iota2_spot_s2.analysis.complementarity import Options

    options = Options(block_px=args.block_px, n_boot=args.n_boot, seed=args.seed,
                      alpha=args.alpha)  # fmt: skip
    names = _names(args.nomenclature)
    if args.run:
        if args.reference or args.map or args.choice:
            raise InputError("--run", "takes its maps from the run: drop --reference/--map")
        for tile_dir in _tile_dirs(Path(args.run)):
            out = Path(args.out) / tile_dir.name if args.out else tile_dir
            report_tile(tile_dir, out, options, names=names, prefer=(f"spot:{args.spot_model}",))
        return 0
    if not args.reference or len(args.map) < 3:
        raise InputError("--map", "give --reference and at least three maps (spot, s2, spot+s2)")
    if args.data is None:
        raise InputError("--data", "say whether the maps come from real or simulated data")
    if args.subset and not args.split:
        raise InputError("--subset", "needs --split (the raster saying which pixels are which)")
    from iota2_spot_s2.analysis.complementarity_inputs import comparison_from_files

    try:
        comp = comparison_from_files(
            Path(args.reference), [(n, Path(p)) for n, p in args.map], field=args.field,
            split=Path(args.split) if args.split else None, subset=args.subset or "test",
            choices={n: Path(p) for n, p in args.choice},
            clear_dates=Path(args.clear_dates) if args.clear_dates else None, names=names,
        )  # fmt: skip
    except ValueError as exc:
        raise InputError("--map", str(exc)) from exc
    title = f"{len(args.map)} maps vs {Path(args.reference).name}"
    _analyse_and_write(comp, Path(args.out or "complementarity"), options, args.data, title)
    return 0


def report_tile(
    tile_dir: Path, out: Path, options: Any, *, names: dict[int, str] | None,
    prefer: tuple[str, ...] = ("spot:fcn",),
) -> None:  # fmt: skip
    """The report of one tile folder of ``fuse-classify run`` (data kind from its comparison)."""
    from iota2_spot_s2.analysis.complementarity_inputs import comparison_from_chain

    comp = comparison_from_chain(tile_dir, names, prefer)
    title = json.loads((tile_dir.parent / "comparison.json").read_text()).get("title", "")
    data_kind = "simulated" if title.startswith("simulated") else "real"
    try:
        _analyse_and_write(comp, out, options, data_kind, f"tile {tile_dir.name}, test split")
    except ValueError as exc:
        raise InputError(tile_dir, f"cannot be analysed: {exc}") from exc


def _analyse_and_write(comp: Any, out: Path, options: Any, data_kind: str, title: str) -> None:
    from iota2_spot_s2.analysis.complementarity import analyse
    from iota2_spot_s2.analysis.complementarity_report import console_table, write_complementarity

    result = analyse(comp, options)
    paths = write_complementarity(result, out, data_kind=data_kind, title=title)
    print(console_table(result, data_kind))
    print(f"report {paths['html']}")


def _tile_dirs(run: Path) -> list[Path]:
    table = run / "spot_s2" / "comparison.json"
    if not table.is_file():
        raise InputError(run, "holds no spot_s2/comparison.json: not a `fuse-classify run` output")
    tiles = sorted({r["tile"] for r in json.loads(table.read_text())["runs"]})
    return [run / "spot_s2" / t for t in tiles]


def _names(path: str | None) -> dict[int, str] | None:
    if path is None:
        return None
    from iota2_spot_s2.nomenclature import read_nomenclature

    nom = read_nomenclature(path)
    return dict(zip(nom.codes, nom.names, strict=True))

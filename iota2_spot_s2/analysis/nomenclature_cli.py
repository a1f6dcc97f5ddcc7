"""``fuse-classify nomenclature``: which and how many classes can be mapped reliably, from files.

One call into the library: :func:`~.nomenclature_inputs.read_confusion`, then
:func:`~.nomenclature_report.analyse` and :func:`~.nomenclature_report.write_nomenclature`.
Every input is read and every number computed before anything is written, so a bad input
leaves no output behind.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from iota2_spot_s2.argtypes import probability
from iota2_spot_s2.errors import InputError


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Register the ``nomenclature`` sub-command."""
    p = sub.add_parser(
        "nomenclature",
        help="which and how many classes can be mapped reliably (merge classes by confusion)",
        description="From one confusion matrix: merges the most confused pair of classes step "
        "by step down to one class (OA, kappa, mean F1 at every number of classes, dendrogram), "
        "proposes merges until every class reaches --min-f1, and scores every level of "
        "hierarchical nomenclatures (--hierarchy), also on remapped rasters (--map/--reference).",
    )
    p.add_argument("--confusion", required=True, metavar="PATH",
                   help="evaluation JSON (fuse-classify evaluate, <tile>/evaluation/"
                   "*_scores.json) or OTB/iota2 confusion CSV")  # fmt: skip
    p.add_argument("--nomenclature", default=None, metavar="PATH",
                   help="iota2 nomenclature.txt (name:code) for the class names")  # fmt: skip
    p.add_argument("--hierarchy", action="append", default=[], metavar="CSV",
                   help="hierarchy CSV (code,name,...,level1_code,level1_name,...): every "
                   "level is scored (repeatable)")  # fmt: skip
    p.add_argument("--map", default=None, metavar="PATH",
                   help="class map raster, scored at every hierarchy level after remapping "
                   "(with --reference, same grid)")  # fmt: skip
    p.add_argument("--reference", default=None, metavar="PATH",
                   help="reference label raster for --map (0 = no-data)")  # fmt: skip
    p.add_argument("--min-f1", type=probability, default=None, metavar="F1",
                   help="propose merges until every class reaches this F1 (0-1)")  # fmt: skip
    p.add_argument("--data", choices=("real", "simulated"), required=True,
                   help="what the matrix was computed from (stated in every output)")  # fmt: skip
    p.add_argument("--title", default=None,
                   help="what the matrix scores: map, split (default: the file name)")  # fmt: skip
    p.add_argument("--out", default="nomenclature", help="output folder (default ./nomenclature)")
    p.set_defaults(func=run_command)


def run_command(args: argparse.Namespace) -> int:
    """Read, check, analyse, write ``nomenclature.{json,md,html}``, print the table and paths."""
    from iota2_spot_s2.analysis.nomenclature_inputs import (
        read_confusion,
        read_hierarchy,
        with_names,
    )
    from iota2_spot_s2.analysis.nomenclature_report import (
        analyse,
        console_table,
        write_nomenclature,
    )

    rasters = _rasters(args)
    table = read_confusion(args.confusion)
    hierarchies = [(path, read_hierarchy(path)) for path in args.hierarchy]
    if args.nomenclature:
        from iota2_spot_s2.nomenclature import read_nomenclature

        nom = read_nomenclature(args.nomenclature)
        table = with_names(table, dict(zip(nom.codes, nom.names, strict=True)))
    elif hierarchies:
        own = dict(zip(hierarchies[0][1].codes, hierarchies[0][1].names, strict=True))
        table = with_names(table, {c: own[c] for c, n in zip(table.codes, table.names, strict=True)
                                   if n == str(c) and c in own})  # fmt: skip
    result = analyse(table, min_f1=args.min_f1, hierarchies=hierarchies, rasters=rasters)
    title = args.title or table.source
    paths = write_nomenclature(result, Path(args.out), data_kind=args.data, title=title)
    print(console_table(result, args.data))
    for kind, path in paths.items():
        print(f"{kind} {path}")
    return 0


def _rasters(args: argparse.Namespace) -> tuple[str, str] | None:
    if args.map is None and args.reference is None:
        return None
    if args.map is None or args.reference is None:
        missing = "--map" if args.map is None else "--reference"
        raise InputError(missing, "--map and --reference go together (class map and its reference)")
    if not args.hierarchy:
        raise InputError("--map", "the rasters are scored at hierarchy levels: give --hierarchy")
    for path in (args.map, args.reference):
        if not Path(path).is_file():
            raise InputError(path, "no such file")
    return args.map, args.reference

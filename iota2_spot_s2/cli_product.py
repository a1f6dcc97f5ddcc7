"""``fuse-classify product``: the OSO-style product of one class map (one library call).

Registered by ``cli.py`` with ``product_cli.add_parser(sub)``. ``--validity`` takes a raster
of cloud-free dates (e.g. the chain's ``reference/s2_clear_dates.tif``); ``--s2`` computes it
from Theia L2A products instead.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from iota2_spot_s2.argtypes import checked, positive_int
from iota2_spot_s2.errors import InputError

_non_negative = checked(float, lambda v: v >= 0, ">= 0")


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Register the ``product`` sub-command."""
    p = sub.add_parser(
        "product",
        help="OSO-style product: class/confidence/validity rasters + MMU-regularised GeoPackage",
    )
    p.add_argument("--map", required=True, help="class map (codes; 0 = no-data)")
    p.add_argument("--confidence", required=True, help="confidence map (0-100, or 0-1 float)")
    p.add_argument("--validity", default=None, help="raster of cloud-free S2 dates per pixel")
    p.add_argument("--s2", default=None, help="Theia L2A product(s) folder to count clear dates")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--mmu-ha", type=_non_negative, default=0.1,
                   help="minimum mapping unit in hectares (default 0.1)")  # fmt: skip
    p.add_argument(
        "--majority-radius",
        type=positive_int,
        default=None,
        help="OTB majority filter radius (pixels) before the sieve (default: none)",
    )
    p.add_argument(
        "--nomenclature",
        default=None,
        help="nomenclature file (default: OSO's 23 classes and colours)",
    )
    p.add_argument("--colors", default=None, help="iota2 colour file for --nomenclature")
    p.add_argument(
        "--recode",
        default=None,
        help="source,target CSV from the map's codes to the nomenclature's",
    )
    p.add_argument("--prefix", default="oso", help="file name prefix (default oso)")
    p.set_defaults(func=run_command)


def run_command(args: argparse.Namespace) -> int:
    """Write the product; print its paths and report as JSON."""
    from iota2_spot_s2.nomenclature import read_nomenclature
    from iota2_spot_s2.product import read_recode_table, write_oso_product, write_validity
    from iota2_spot_s2.product.rasters import read_class_map

    if args.validity and args.s2:
        raise InputError("--s2", "give either --validity or --s2, not both")
    nom = read_nomenclature(args.nomenclature, args.colors) if args.nomenclature else None
    recode = read_recode_table(args.recode) if args.recode else None
    validity = args.validity
    out = Path(args.out)
    if args.s2:
        _, grid = read_class_map(args.map)
        validity = write_validity(args.s2, grid, out / f".{args.prefix}_s2_clear_dates.tif")
    try:
        product = write_oso_product(
            args.map, args.confidence, validity, out, mmu_ha=args.mmu_ha, nomenclature=nom,
            recode=recode, majority_radius=args.majority_radius, prefix=args.prefix,
        )  # fmt: skip
    finally:
        if args.s2 and validity is not None:
            Path(validity).unlink(missing_ok=True)
    paths = {k: str(v) if v else None for k, v in vars(product).items()}
    print(json.dumps({"paths": paths, "report": json.loads(product.report.read_text())},
                     indent=2, ensure_ascii=False))  # fmt: skip
    return 0

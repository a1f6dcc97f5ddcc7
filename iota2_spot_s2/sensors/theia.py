"""Theia Sentinel-2 L2A products (MAJA) and iota2 ``sensor_data`` trees: description and discovery.

A Theia L2A product is a folder named
``SENTINEL2{A,B,...}_YYYYMMDD-HHMMSS-mmm_L2A_T<TILE>_<C|D>_V<major>-<minor>`` holding one GeoTIFF
per band and product type (``*_FRE_B2.tif`` flat reflectance, ``*_SRE_B2.tif`` surface reflectance),
plus ``MASKS/*_{CLM,EDG,SAT}_{R1,R2}.tif``. Date, tile, platform and version are parsed from the
folder name, so no ``MTD_ALL.xml`` is needed. An iota2 ``sensor_data`` tree is
``<root>/<TILE>/<product folders>``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from os import PathLike
from pathlib import Path
from typing import ClassVar

from iota2_spot_s2.errors import InputError


class TheiaS2L2A:
    """Declarative description of a Theia Sentinel-2 L2A product (class attributes only)."""

    sensor: ClassVar[str] = "Sentinel-2"
    level: ClassVar[str] = "L2A"
    #: Band names in Theia (and iota2) order.
    bands: ClassVar[tuple[str, ...]] = (
        "B2", "B3", "B4", "B5", "B6", "B7", "B8", "B8A", "B11", "B12",
    )  # fmt: skip
    #: Resolution groups: R1 = 10 m, R2 = 20 m; SAT mask bit k is band k of its group.
    groups: ClassVar[dict[str, tuple[str, ...]]] = {
        "R1": ("B2", "B3", "B4", "B8"),
        "R2": ("B5", "B6", "B7", "B8A", "B11", "B12"),
    }
    resolutions: ClassVar[dict[str, float]] = {"R1": 10.0, "R2": 20.0}
    products: ClassVar[tuple[str, ...]] = ("FRE", "SRE")
    band_glob: ClassVar[str] = "*_{product}_{band}.tif"
    masks: ClassVar[tuple[str, ...]] = ("CLM", "EDG", "SAT")
    mask_glob: ClassVar[str] = "MASKS/*_{mask}_{group}.tif"
    #: Reflectance = integer / scale; ``nodata`` marks missing pixels (no GDAL tag is set).
    scale: ClassVar[float] = 10000.0
    nodata: ClassVar[int] = -10000
    folder_re: ClassVar[re.Pattern[str]] = re.compile(
        r"^(?P<platform>SENTINEL2[A-D])_(?P<date>\d{8})-(?P<time>\d{6})-(?P<ms>\d{3})"
        r"_(?P<level>L2A)_(?P<tile>T\d{2}[A-Z]{3})_(?P<flag>[A-Z])_V(?P<version>\d+-\d+)$"
    )

    @classmethod
    def group_of(cls, band: str) -> str:
        """Resolution group (``"R1"`` or ``"R2"``) of a band."""
        return next(g for g, names in cls.groups.items() if band in names)


@dataclass(frozen=True)
class ProductInfo:
    """What the folder name of a Theia L2A product says.

    Attributes:
        path: The product folder.
        platform: ``SENTINEL2A``, ``SENTINEL2B``...
        date: Acquisition date and time (UTC, naive).
        tile: MGRS tile with its ``T`` prefix, e.g. ``T30TYP``.
        level: Processing level (``L2A``).
        flag: Theia's completeness flag letter (``C`` or ``D``).
        version: Processor version, e.g. ``1.9``.
    """

    path: Path
    platform: str
    date: datetime
    tile: str
    level: str
    flag: str
    version: str

    @property
    def name(self) -> str:
        """Folder name."""
        return self.path.name


def parse_product_name(path: str | PathLike[str]) -> ProductInfo | None:
    """Parse a product folder name; ``None`` when the name is not a Theia L2A product."""
    path = Path(path)
    match = TheiaS2L2A.folder_re.match(path.name)
    if match is None:
        return None
    g = match.groupdict()
    date = datetime.strptime(g["date"] + g["time"] + g["ms"], "%Y%m%d%H%M%S%f")
    return ProductInfo(
        path=path,
        platform=g["platform"],
        date=date,
        tile=g["tile"],
        level=g["level"],
        flag=g["flag"],
        version=g["version"].replace("-", "."),
    )


def product_info(path: str | PathLike[str]) -> ProductInfo:
    """Parse a product folder that must exist and be named like a Theia L2A product.

    Raises:
        InputError: If the folder is missing or its name is not a Theia L2A product name.
    """
    path = Path(path)
    if not path.exists():
        raise InputError(path, "does not exist")
    info = parse_product_name(path)
    if info is None or not path.is_dir():
        raise InputError(
            path, "not a Theia L2A product folder (SENTINEL2X_YYYYMMDD-HHMMSS-mmm_L2A_T..._V*)"
        )
    return info


def is_product_dir(path: str | PathLike[str]) -> bool:
    """True for an existing folder named like a Theia L2A product."""
    return Path(path).is_dir() and parse_product_name(path) is not None


def check_product(product: str) -> str:
    """Validate a product type name (``FRE`` or ``SRE``)."""
    if product.upper() not in TheiaS2L2A.products:
        raise ValueError(f"product must be one of {TheiaS2L2A.products}, not {product!r}")
    return product.upper()


def band_files(info: ProductInfo, product: str = "FRE") -> dict[str, Path]:
    """The band files of a product, in Theia band order.

    Raises:
        InputError: If no band file, or not every band, is present.
    """
    product = check_product(product)
    found: dict[str, Path] = {}
    for band in TheiaS2L2A.bands:
        matches = sorted(info.path.glob(TheiaS2L2A.band_glob.format(product=product, band=band)))
        if matches:
            found[band] = matches[0]
    if not found:
        raise InputError(info.path, f"no {product} band files (*_{product}_B*.tif) in the folder")
    missing = [b for b in TheiaS2L2A.bands if b not in found]
    if missing:
        raise InputError(info.path, f"{product} bands missing: {' '.join(missing)}")
    return found


def available_products(info: ProductInfo) -> list[str]:
    """Product types (FRE/SRE) with at least one band file in the folder."""
    return [
        p
        for p in TheiaS2L2A.products
        if any(info.path.glob(TheiaS2L2A.band_glob.format(product=p, band="B*")))
    ]


def mask_files(info: ProductInfo) -> tuple[dict[str, Path], list[str]]:
    """Masks present and missing, keyed ``CLM_R1``, ``EDG_R2``... (missing is not an error)."""
    found: dict[str, Path] = {}
    missing: list[str] = []
    for mask in TheiaS2L2A.masks:
        for group in TheiaS2L2A.groups:
            matches = sorted(info.path.glob(TheiaS2L2A.mask_glob.format(mask=mask, group=group)))
            key = f"{mask}_{group}"
            if matches:
                found[key] = matches[0]
            else:
                missing.append(key)
    return found, missing


def _products_in(folder: Path) -> list[ProductInfo]:
    children = sorted(p for p in folder.iterdir() if p.is_dir())
    infos = [parse_product_name(p) for p in children]
    return [i for i in infos if i is not None]


def _sorted(infos: Sequence[ProductInfo]) -> list[ProductInfo]:
    return sorted(infos, key=lambda i: (i.date, i.name))


def list_sensor_data(root: str | PathLike[str]) -> dict[str, list[ProductInfo]]:
    """Tiles and their products (sorted by date) in an iota2 ``sensor_data`` tree.

    ``root`` is ``<root>/<TILE>/<product folders>`` (the tile key is the folder name, as iota2
    does); a folder holding product folders directly is also accepted (grouped by the tile in the
    product names).

    Raises:
        InputError: If ``root`` is missing, not a folder, or holds no product.
    """
    root = Path(root)
    if not root.exists():
        raise InputError(root, "does not exist")
    if not root.is_dir():
        raise InputError(root, "is not a folder")
    tiles: dict[str, list[ProductInfo]] = {}
    for info in _products_in(root):
        tiles.setdefault(info.tile, []).append(info)
    for child in sorted(p for p in root.iterdir() if p.is_dir() and not is_product_dir(p)):
        infos = _products_in(child)
        if infos:
            tiles.setdefault(child.name, []).extend(infos)
    if not tiles:
        raise InputError(
            root, "no Theia L2A product folders found (expected <root>/<TILE>/SENTINEL2*_L2A_*)"
        )
    return {tile: _sorted(infos) for tile, infos in sorted(tiles.items())}


def find_products(
    source: str | PathLike[str] | Sequence[str | PathLike[str]],
) -> list[ProductInfo]:
    """Products named by ``source``, sorted by date.

    Args:
        source: One product folder, a list of them, a folder holding product folders, or a
            ``sensor_data`` tree with a single tile.

    Raises:
        InputError: If nothing usable is found, or a tree holds several tiles.
    """
    if isinstance(source, (list, tuple)):
        if not source:
            raise InputError("<empty list>", "no product folder given")
        return _sorted([product_info(p) for p in source])
    path = Path(source)  # type: ignore[arg-type]
    if is_product_dir(path):
        return [product_info(path)]
    tiles = list_sensor_data(path)
    if len(tiles) > 1:
        raise InputError(
            path, f"holds several tiles ({', '.join(tiles)}); open one tile folder at a time"
        )
    return next(iter(tiles.values()))

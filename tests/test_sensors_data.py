"""Seeded writers of small synthetic sensor inputs for the sensors tests (real formats, tmp_path).

- ``write_theia_product``: a Theia L2A folder with real Theia names (FRE bands R1 at 10 m, R2 at
  20 m, optional ``MASKS/*_{CLM,EDG,SAT}_R{1,2}.tif``), EPSG:32631.
- ``write_spot_tif``: a SPOT-like uint16 GeoTIFF in EPSG:2154.
- ``write_dimap``: a DIMAP v2 product (``DIM_*.XML`` + ``IMG_*_R1C1.TIF``) that GDAL's DIMAP
  driver opens.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import rasterio
from affine import Affine
from rasterio.transform import from_origin

BANDS_R1 = ("B2", "B3", "B4", "B8")
BANDS_R2 = ("B5", "B6", "B7", "B8A", "B11", "B12")
THEIA_CRS = "EPSG:32631"


def theia_name(date: str = "20200101-103000-000", tile: str = "T31TCJ", sat: str = "A") -> str:
    return f"SENTINEL2{sat}_{date}_L2A_{tile}_C_V2-2"


def write_tif(path: Path, data: np.ndarray, transform: Affine, crs: str | None, **kw) -> Path:
    data = data if data.ndim == 3 else data[None]
    path.parent.mkdir(parents=True, exist_ok=True)
    profile = {
        "driver": "GTiff",
        "width": data.shape[2],
        "height": data.shape[1],
        "count": data.shape[0],
        "dtype": data.dtype.name,
        "transform": transform,
        **kw,
    }
    if crs is not None:
        profile["crs"] = crs
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(data)
    return path


def write_theia_product(
    root: Path,
    *,
    date: str = "20200101-103000-000",
    tile: str = "T31TCJ",
    size: int = 40,
    origin: tuple[float, float] = (500000.0, 4800000.0),
    seed: int = 0,
    masks: dict[str, np.ndarray] | None = None,
) -> Path:
    """Write a product of ``size`` x ``size`` 10 m pixels; returns the product folder."""
    rng = np.random.default_rng(seed)
    folder = root / theia_name(date, tile)
    x0, y0 = origin
    for band in BANDS_R1:
        data = rng.integers(0, 6000, (size, size)).astype("int16")
        write_tif(
            folder / f"{folder.name}_FRE_{band}.tif", data, from_origin(x0, y0, 10, 10), THEIA_CRS
        )
    for band in BANDS_R2:
        data = rng.integers(0, 6000, (size // 2, size // 2)).astype("int16")
        write_tif(
            folder / f"{folder.name}_FRE_{band}.tif", data, from_origin(x0, y0, 20, 20), THEIA_CRS
        )
    for key, mask in (masks or {}).items():
        res = 10 if key.endswith("R1") else 20
        path = folder / "MASKS" / f"{folder.name}_{key}.tif"
        write_tif(path, mask.astype("uint8"), from_origin(x0, y0, res, res), THEIA_CRS)
    return folder


def write_spot_tif(
    path: Path, data: np.ndarray, res: float = 6.0, nodata: float | None = 0
) -> Path:
    kw = {} if nodata is None else {"nodata": nodata}
    return write_tif(path, data, from_origin(600000.0, 6300000.0, res, res), "EPSG:2154", **kw)


DIMAP_XML = """<?xml version="1.0" encoding="UTF-8"?>
<Dimap_Document name="{name}">
 <Metadata_Identification>
  <METADATA_FORMAT version="2.0">DIMAP</METADATA_FORMAT>
  <METADATA_PROFILE>S6_ORTHO</METADATA_PROFILE>
 </Metadata_Identification>
 <Dataset_Sources><Source_Identification><Strip_Source>
  <MISSION>SPOT</MISSION><MISSION_INDEX>7</MISSION_INDEX>
  <IMAGING_DATE>2019-06-02</IMAGING_DATE><IMAGING_TIME>10:41:12.5Z</IMAGING_TIME>
 </Strip_Source></Source_Identification></Dataset_Sources>
 <Processing_Information><Product_Settings>
  <SPECTRAL_PROCESSING>{processing}</SPECTRAL_PROCESSING>
 </Product_Settings></Processing_Information>
 <Raster_Data>
  <Data_Access>
   <DATA_FILE_FORMAT version="1.0">image/tiff</DATA_FILE_FORMAT>
   <Data_Files><Data_File tile_R="1" tile_C="1">
    <DATA_FILE_PATH href="{image}"/>
   </Data_File></Data_Files>
  </Data_Access>
  <Raster_Dimensions>
   <NROWS>{rows}</NROWS><NCOLS>{cols}</NCOLS><NBANDS>{bands}</NBANDS>
  </Raster_Dimensions>
  <Raster_Display>
   <Band_Display_Order>{display}</Band_Display_Order>
   <Special_Value>
    <SPECIAL_VALUE_COUNT>0</SPECIAL_VALUE_COUNT><SPECIAL_VALUE_TEXT>NODATA</SPECIAL_VALUE_TEXT>
   </Special_Value>
  </Raster_Display>
 </Raster_Data>
 <Coordinate_Reference_System><Projected_CRS>
  <PROJECTED_CRS_CODE>urn:ogc:def:crs:EPSG::2154</PROJECTED_CRS_CODE>
 </Projected_CRS></Coordinate_Reference_System>
</Dimap_Document>
"""


def write_dimap(folder: Path, data: np.ndarray, band_ids: tuple[str, ...]) -> Path:
    """A DIMAP v2 product whose image holds ``data`` with bands ``band_ids`` in file order.

    The image TIFF carries no CRS: GDAL's DIMAP driver takes it from the XML.
    """
    processing = "PAN" if band_ids == ("P",) else "MS"
    stem = f"SPOT7_{processing}_201906021041125_ORT_1"
    image = f"IMG_{stem}_R1C1.TIF"
    res = 1.5 if processing == "PAN" else 6.0
    write_tif(folder / image, data, from_origin(600000.0, 6300000.0, res, res), None)
    channels = ("RED_CHANNEL", "GREEN_CHANNEL", "BLUE_CHANNEL", "ALPHA_CHANNEL")
    display = "".join(f"<{c}>{b}</{c}>" for c, b in zip(channels, band_ids, strict=False))
    xml = folder / f"DIM_{stem}.XML"
    xml.write_text(
        DIMAP_XML.format(
            name=xml.name,
            processing=processing,
            image=image,
            rows=data.shape[-2],
            cols=data.shape[-1],
            bands=len(band_ids),
            display=display,
        )
    )
    return xml


def test_dimap_fixture_opens_with_gdal_dimap_driver(tmp_path: Path) -> None:
    data = np.arange(4 * 6 * 8, dtype="uint16").reshape(4, 6, 8)
    xml = write_dimap(tmp_path, data, ("B2", "B1", "B0", "B3"))
    with rasterio.open(xml) as src:
        assert src.driver == "DIMAP"
        assert src.crs.to_epsg() == 2154
        assert src.transform == from_origin(600000.0, 6300000.0, 6.0, 6.0)
        np.testing.assert_array_equal(src.read(), data)


def test_theia_fixture_uses_theia_names(tmp_path: Path) -> None:
    folder = write_theia_product(tmp_path, masks={"CLM_R1": np.zeros((40, 40))})
    names = sorted(p.name for p in folder.rglob("*.tif"))
    assert f"{folder.name}_FRE_B8A.tif" in names
    assert f"{folder.name}_CLM_R1.tif" in names
    assert len(names) == 11

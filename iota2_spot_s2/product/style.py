"""QGIS style of the vector product: a categorized renderer on ``class_code`` (OSO colours).

Written as a ``.qml`` beside the GeoPackage and, when possible, stored in the GeoPackage's
``layer_styles`` table as the layer's default style (QGIS applies it when the layer is opened).
"""

from __future__ import annotations

import datetime as dt
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pyogrio.raw

from iota2_spot_s2.nomenclature import Nomenclature

_DOCTYPE = "<!DOCTYPE qgis PUBLIC 'http://mrcc.com/qgis.dtd' 'SYSTEM'>\n"


def vector_qml(nom: Nomenclature, field: str = "class_code") -> str:
    """QGIS 3 style text: one category (fill colour, label) per class."""
    root = ET.Element("qgis", version="3.28.0", styleCategories="Symbology")
    renderer = ET.SubElement(
        root, "renderer-v2", type="categorizedSymbol", attr=field, symbollevels="0",
        enableorderby="0", forceraster="0",
    )  # fmt: skip
    categories = ET.SubElement(renderer, "categories")
    symbols = ET.SubElement(renderer, "symbols")
    for i, (code, name, (r, g, b)) in enumerate(zip(nom.codes, nom.names, nom.colors, strict=True)):
        ET.SubElement(categories, "category", value=str(code), label=name, symbol=str(i),
                      render="true")  # fmt: skip
        symbol = ET.SubElement(symbols, "symbol", type="fill", name=str(i), alpha="1",
                               clip_to_extent="1", force_rhr="0")  # fmt: skip
        layer = ET.SubElement(symbol, "layer", enabled="1", locked="0")
        layer.set("class", "SimpleFill")
        layer.set("pass", "0")
        props = {"color": f"{r},{g},{b},255", "style": "solid", "outline_style": "no",
                 "outline_color": f"{r},{g},{b},255", "outline_width": "0"}  # fmt: skip
        for key, value in props.items():
            ET.SubElement(layer, "prop", k=key, v=value)
    ET.indent(root)
    return _DOCTYPE + ET.tostring(root, encoding="unicode") + "\n"


def store_default_style(gpkg: Path, layer: str, qml: str) -> bool:
    """Add ``qml`` as ``layer``'s default QGIS style in ``gpkg``'s ``layer_styles`` table.

    Returns False (and leaves the file as it was) when the driver refuses a table without
    geometry; the ``.qml`` beside the file still styles the layer.
    """
    now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S")
    fields = {
        "f_table_catalog": "", "f_table_schema": "", "f_table_name": layer,
        "f_geometry_column": "geom", "styleName": layer, "styleQML": qml, "styleSLD": "",
        "useAsDefault": 1, "description": "OSO nomenclature colours", "owner": "",
        "ui": "", "update_time": now,
    }  # fmt: skip
    data = [np.array([v], dtype=object if isinstance(v, str) else np.int32)
            for v in fields.values()]  # fmt: skip
    try:
        pyogrio.raw.write(gpkg, None, data, list(fields), layer="layer_styles", driver="GPKG",
                          append=True, encoding="UTF-8")  # fmt: skip
    except Exception:  # noqa: BLE001 - an optional convenience; the .qml remains
        return False
    return True

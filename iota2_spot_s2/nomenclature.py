"""Nomenclatures: class codes, names, colours and optional coarser levels, in iota2's formats.

File formats (all UTF-8; Latin-1 is accepted on reading; blank lines and lines starting with
``#`` are skipped):

- ``nomenclature.txt`` (iota2): one ``name:code`` per line, e.g. ``Prairies:13``. The name is
  everything before the *last* colon, so names may contain colons.
- ``colorFile.txt`` (iota2): one ``code R G B`` per line, whitespace separated, 0-255. A line for
  code 0 (no-data) is tolerated and ignored, as are codes absent from the nomenclature.
- hierarchy CSV (this package): a header row, then one row per class::

      code,name,red,green,blue,level1_code,level1_name,level2_code,level2_name
      6,Céréales à paille,208,255,0,2,Cultures,21,Cultures annuelles

  ``red,green,blue`` are optional (all three or none). ``levelN_code,levelN_name`` pairs are
  optional, numbered from 1 = the *coarsest* level; the class's own code is the finest level.
  Every class must name a parent at every level, and one parent code always carries one name.

Code 0 is reserved for no-data and is never a class; codes are 1..65535 (labels are uint16).
Without a colour file, colours come from a fixed, deterministic palette.
"""

from __future__ import annotations

import colorsys
import csv
import io
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from os import PathLike
from pathlib import Path

from iota2_spot_s2.errors import InputError
from iota2_spot_s2.io import atomic_output

RGB = tuple[int, int, int]
MAX_CODE = 65535


@dataclass(frozen=True)
class Level:
    """One coarser level of a hierarchical nomenclature.

    Attributes:
        codes: Parent code of each class, aligned with :attr:`Nomenclature.codes`.
        names: Parent name of each class, aligned the same way.

    """

    codes: tuple[int, ...]
    names: tuple[str, ...]


@dataclass(frozen=True)
class Nomenclature:
    """A set of land-cover classes.

    Attributes:
        codes: Class codes, strictly increasing, in 1..65535 (0 is no-data).
        names: Class names, aligned with ``codes``.
        colors: ``(r, g, b)`` per class, 0-255.
        levels: Coarser levels, ``levels[0]`` being level 1 (the coarsest); may be empty.

    """

    codes: tuple[int, ...]
    names: tuple[str, ...]
    colors: tuple[RGB, ...]
    levels: tuple[Level, ...] = ()

    def __post_init__(self) -> None:
        n = len(self.codes)
        if len(self.names) != n or len(self.colors) != n:
            raise ValueError("codes, names and colors must have the same length")
        if any(not 0 < c <= MAX_CODE for c in self.codes):
            raise ValueError(f"class codes must be in 1..{MAX_CODE} (0 is no-data)")
        if any(a >= b for a, b in zip(self.codes, self.codes[1:], strict=False)):
            raise ValueError("class codes must be unique and sorted")
        if any(len(c) != 3 or not all(0 <= v <= 255 for v in c) for c in self.colors):
            raise ValueError("colors must be (r, g, b) tuples in 0..255")
        for level in self.levels:
            if len(level.codes) != n or len(level.names) != n:
                raise ValueError("every level needs one parent per class")
            if len(set(zip(level.codes, level.names, strict=True))) != len(set(level.codes)):
                raise ValueError("a parent code must always carry the same name")

    @classmethod
    def from_classes(
        cls,
        classes: Mapping[int, str] | Iterable[tuple[int, str]],
        colors: Mapping[int, RGB] | None = None,
        levels: Sequence[Mapping[int, tuple[int, str]]] = (),
    ) -> Nomenclature:
        """Build a nomenclature from unsorted pieces.

        Args:
            classes: ``{code: name}`` or ``(code, name)`` pairs.
            colors: ``{code: (r, g, b)}``; missing codes get the default palette.
            levels: Per level (coarsest first), ``{code: (parent_code, parent_name)}``.

        """
        pairs = sorted(dict(classes).items() if isinstance(classes, Mapping) else classes)
        codes = tuple(int(c) for c, _ in pairs)
        palette = default_palette(len(codes))
        rgb = tuple(
            tuple(int(v) for v in (colors or {}).get(c, palette[i])) for i, c in enumerate(codes)
        )
        lv = tuple(
            Level(tuple(m[c][0] for c in codes), tuple(m[c][1] for c in codes)) for m in levels
        )
        return cls(codes, tuple(n for _, n in pairs), rgb, lv)  # type: ignore[arg-type]

    def __len__(self) -> int:
        return len(self.codes)

    def index_of(self, code: int) -> int:
        """Position of ``code`` in :attr:`codes` (the class's logit index)."""
        return self.codes.index(code)

    def name_of(self, code: int) -> str:
        """Name of the class ``code``."""
        return self.names[self.index_of(code)]

    def color_table(self, nodata: int = 0) -> dict[int, tuple[int, int, int, int]]:
        """``{code: (r, g, b, 255)}`` for ``write_colormap``; no-data is transparent black."""
        table = {nodata: (0, 0, 0, 0)}
        table.update({c: (*rgb, 255) for c, rgb in zip(self.codes, self.colors, strict=True)})
        return table

    def parent_mapping(self, level: int) -> dict[int, int]:
        """``{class code: parent code}`` at ``level`` (1 = coarsest)."""
        lv = self._level(level)
        return dict(zip(self.codes, lv.codes, strict=True))

    def coarsen(self, level: int) -> Nomenclature:
        """The nomenclature of ``level``'s parent classes, keeping the coarser levels above it.

        A parent takes the colour of its lowest-coded child.
        """
        lv = self._level(level)
        first: dict[int, int] = {}
        for i, parent in enumerate(lv.codes):
            first.setdefault(parent, i)
        order = sorted(first)
        rows = [first[p] for p in order]
        coarser = tuple(
            Level(tuple(u.codes[i] for i in rows), tuple(u.names[i] for i in rows))
            for u in self.levels[: level - 1]
        )
        return Nomenclature(
            tuple(order),
            tuple(lv.names[i] for i in rows),
            tuple(self.colors[i] for i in rows),
            coarser,
        )

    def write_qml(self, path: str | PathLike[str], nodata: int = 0) -> Path:
        """Write a QGIS paletted-raster style (band 1), one palette entry per class.

        ``nodata`` pixels are made fully transparent. The file is written atomically.
        """
        with atomic_output(path) as tmp:
            tmp.write_text(_qml_text(self, nodata), encoding="utf-8")
        return Path(path)

    qml = write_qml

    def _level(self, level: int) -> Level:
        if not 1 <= level <= len(self.levels):
            raise ValueError(f"level {level} not in 1..{len(self.levels)}")
        return self.levels[level - 1]


def default_palette(n: int) -> list[RGB]:
    """``n`` distinct, deterministic colours (golden-ratio hues, alternating lightness)."""
    out = []
    for i in range(n):
        r, g, b = colorsys.hls_to_rgb((i * 0.618033988749895) % 1.0, 0.45 + 0.15 * (i % 2), 0.75)
        out.append((round(r * 255), round(g * 255), round(b * 255)))
    return out


def _read_lines(path: str | PathLike[str]) -> list[tuple[int, str]]:
    """``(line number, stripped text)`` of the meaningful lines of a text file."""
    try:
        raw = Path(path).read_bytes()
    except OSError as exc:
        raise InputError(path, f"cannot be read ({exc.strerror})") from exc
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        text = raw.decode("latin-1")
    lines = [(i, s.strip()) for i, s in enumerate(text.splitlines(), start=1)]
    return [(i, s) for i, s in lines if s and not s.startswith("#")]


def _parse_code(path: str | PathLike[str], lineno: int, text: str) -> int:
    try:
        code = int(text.strip())
    except ValueError:
        raise InputError(
            path, f"line {lineno}: class code {text.strip()!r} is not an integer"
        ) from None
    if code == 0:
        raise InputError(path, f"line {lineno}: code 0 is reserved for no-data")
    if not 0 < code <= MAX_CODE:
        raise InputError(path, f"line {lineno}: class code {code} not in 1..{MAX_CODE}")
    return code


def _add_unique(path: str | PathLike[str], seen: dict[int, int], code: int, lineno: int) -> None:
    if code in seen:
        raise InputError(path, f"line {lineno}: duplicate code {code} (first on line {seen[code]})")
    seen[code] = lineno


def read_color_file(path: str | PathLike[str]) -> dict[int, RGB]:
    """Read an iota2 ``colorFile.txt`` (``code R G B`` lines) into ``{code: (r, g, b)}``.

    Code 0 lines are skipped. Raises InputError on malformed or duplicate lines.
    """
    colors: dict[int, RGB] = {}
    seen: dict[int, int] = {}
    for lineno, line in _read_lines(path):
        parts = line.split()
        if len(parts) != 4:
            raise InputError(path, f"line {lineno}: expected 'code R G B', got {line!r}")
        if parts[0].strip() in ("0", "-0"):
            continue
        code = _parse_code(path, lineno, parts[0])
        _add_unique(path, seen, code, lineno)
        colors[code] = _parse_rgb(path, lineno, parts[1:])
    return colors


def _parse_rgb(path: str | PathLike[str], lineno: int, parts: Sequence[str]) -> RGB:
    try:
        rgb = tuple(int(p) for p in parts)
    except ValueError:
        raise InputError(
            path, f"line {lineno}: colour {' '.join(parts)!r} is not 3 integers"
        ) from None
    if len(rgb) != 3 or not all(0 <= v <= 255 for v in rgb):
        raise InputError(path, f"line {lineno}: colour {' '.join(parts)!r} not 3 values in 0..255")
    return rgb[0], rgb[1], rgb[2]


def _read_txt_classes(path: str | PathLike[str]) -> dict[int, str]:
    classes: dict[int, str] = {}
    seen: dict[int, int] = {}
    for lineno, line in _read_lines(path):
        name, sep, code_text = line.rpartition(":")
        if not sep or not name.strip():
            raise InputError(path, f"line {lineno}: expected 'name:code', got {line!r}")
        code = _parse_code(path, lineno, code_text)
        _add_unique(path, seen, code, lineno)
        classes[code] = name.strip()
    if not classes:
        raise InputError(path, "no class found")
    return classes


def read_nomenclature(
    path: str | PathLike[str], color_path: str | PathLike[str] | None = None
) -> Nomenclature:
    """Read a nomenclature: iota2 ``name:code`` text, or a hierarchy CSV (``.csv`` suffix).

    Args:
        path: The nomenclature file.
        color_path: Optional iota2 colour file; it overrides colours from a CSV. It must give a
            colour to every class.

    Raises:
        InputError: Malformed line (with its number), duplicate code, code 0, missing colour.

    """
    if Path(path).suffix.lower() == ".csv":
        nom = read_hierarchy_csv(path)
    else:
        nom = Nomenclature.from_classes(_read_txt_classes(path))
    if color_path is None:
        return nom
    colors = read_color_file(color_path)
    missing = [c for c in nom.codes if c not in colors]
    if missing:
        raise InputError(color_path, f"no colour for class code(s) {missing}")
    return Nomenclature(nom.codes, nom.names, tuple(colors[c] for c in nom.codes), nom.levels)


def _csv_layout(path: str | PathLike[str], header: list[str]) -> tuple[bool, int]:
    """Check a hierarchy CSV header; return (has colour columns, number of levels)."""
    cols = [h.strip().lower() for h in header]
    if cols[:2] != ["code", "name"]:
        raise InputError(path, "line 1: header must start with 'code,name'")
    rest = cols[2:]
    has_rgb = rest[:3] == ["red", "green", "blue"]
    rest = rest[3:] if has_rgb else rest
    n_levels = len(rest) // 2
    expected = [f"level{k}_{w}" for k in range(1, n_levels + 1) for w in ("code", "name")]
    if len(rest) % 2 or rest != expected:
        raise InputError(
            path,
            f"line 1: unexpected columns {rest}; after 'code,name[,red,green,blue]' give "
            "level1_code,level1_name[,level2_code,level2_name...]",
        )
    return has_rgb, n_levels


def read_hierarchy_csv(path: str | PathLike[str]) -> Nomenclature:
    """Read the hierarchy CSV described in the module docstring."""
    lines = _read_lines(path)
    if not lines:
        raise InputError(path, "empty file")
    rows = [next(csv.reader([s])) for _, s in lines]  # one row per line, always
    has_rgb, n_levels = _csv_layout(path, rows[0])
    classes: dict[int, str] = {}
    colors: dict[int, RGB] = {}
    parents: list[dict[int, tuple[int, str]]] = [{} for _ in range(n_levels)]
    level_names: list[dict[int, tuple[str, int]]] = [{} for _ in range(n_levels)]
    seen: dict[int, int] = {}
    width = 2 + 3 * has_rgb + 2 * n_levels
    for (lineno, _), row in zip(lines[1:], rows[1:], strict=True):
        if len(row) != width:
            raise InputError(path, f"line {lineno}: expected {width} columns, got {len(row)}")
        code = _parse_code(path, lineno, row[0])
        _add_unique(path, seen, code, lineno)
        classes[code] = row[1].strip()
        if has_rgb:
            colors[code] = _parse_rgb(path, lineno, row[2:5])
        base = 2 + 3 * has_rgb
        for k in range(n_levels):
            pcode = _parse_code(path, lineno, row[base + 2 * k])
            pname = row[base + 2 * k + 1].strip()
            known = level_names[k].setdefault(pcode, (pname, lineno))
            if known[0] != pname:
                raise InputError(
                    path,
                    f"line {lineno}: level{k + 1} code {pcode} named {pname!r}, "
                    f"but {known[0]!r} on line {known[1]}",
                )
            parents[k][code] = (pcode, pname)
    if not classes:
        raise InputError(path, "no class found")
    return Nomenclature.from_classes(classes, colors or None, parents)


def write_nomenclature(nom: Nomenclature, path: str | PathLike[str]) -> Path:
    """Write iota2's ``name:code`` file (or the hierarchy CSV if ``path`` ends in ``.csv``)."""
    if Path(path).suffix.lower() == ".csv":
        return write_hierarchy_csv(nom, path)
    text = "".join(f"{n}:{c}\n" for c, n in zip(nom.codes, nom.names, strict=True))
    return _write_text(path, text)


def write_color_file(nom: Nomenclature, path: str | PathLike[str]) -> Path:
    """Write iota2's ``code R G B`` colour file."""
    text = "".join(f"{c} {r} {g} {b}\n" for c, (r, g, b) in zip(nom.codes, nom.colors, strict=True))
    return _write_text(path, text)


def write_hierarchy_csv(nom: Nomenclature, path: str | PathLike[str]) -> Path:
    """Write the hierarchy CSV (codes, names, colours and every level)."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    header = ["code", "name", "red", "green", "blue"]
    for k in range(1, len(nom.levels) + 1):
        header += [f"level{k}_code", f"level{k}_name"]
    writer.writerow(header)
    for i, code in enumerate(nom.codes):
        row: list[object] = [code, nom.names[i], *nom.colors[i]]
        for lv in nom.levels:
            row += [lv.codes[i], lv.names[i]]
        writer.writerow(row)
    return _write_text(path, buf.getvalue())


def _write_text(path: str | PathLike[str], text: str) -> Path:
    with atomic_output(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)


def _qml_text(nom: Nomenclature, nodata: int) -> str:
    root = ET.Element("qgis", version="3.28.0", styleCategories="AllStyleCategories")
    pipe = ET.SubElement(root, "pipe")
    renderer = ET.SubElement(
        pipe,
        "rasterrenderer",
        type="paletted",
        band="1",
        opacity="1",
        alphaBand="-1",
        nodataColor="",
    )
    transparency = ET.SubElement(renderer, "rasterTransparency")
    single = ET.SubElement(transparency, "singleValuePixelList")
    ET.SubElement(
        single, "pixelListEntry", min=str(nodata), max=str(nodata), percentTransparent="100"
    )
    palette = ET.SubElement(renderer, "colorPalette")
    for code, name, (r, g, b) in zip(nom.codes, nom.names, nom.colors, strict=True):
        ET.SubElement(
            palette,
            "paletteEntry",
            value=str(code),
            color=f"#{r:02x}{g:02x}{b:02x}",
            label=name,
            alpha="255",
        )
    ET.SubElement(pipe, "brightnesscontrast", brightness="0", contrast="0", gamma="1")
    ET.SubElement(pipe, "huesaturation", saturation="0", grayscaleMode="0", colorizeOn="0")
    ET.SubElement(pipe, "rasterresampler", maxOversampling="2")
    ET.SubElement(root, "blendMode").text = "0"
    ET.indent(root)
    body = ET.tostring(root, encoding="unicode")
    return "<!DOCTYPE qgis PUBLIC 'http://mrcc.com/qgis.dtd' 'SYSTEM'>\n" + body + "\n"

"""One analysis report, three files: ``<stem>.json``, ``<stem>.md``, ``<stem>.html``.

A :class:`Page` collects Markdown-ish sections (headings, paragraphs, tables) and matplotlib
figures. :func:`write_page` writes every number to JSON, the text and tables to Markdown (with
the figures as PNG files beside it), and one self-contained HTML file with the figures embedded
as base64 PNG, so that the HTML can be mailed or attached to a ticket alone. Every page carries
its ``data_kind`` ("real" or "simulated") in the title line of all three files.

All files are written atomically (temporary name, then rename).
"""

from __future__ import annotations

import base64
import html
import io
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from iota2_spot_s2.io import atomic_output

DATA_KINDS = ("real", "simulated")


@dataclass
class Page:
    """A report being built.

    Attributes:
        title: What the page is about (the data kind is added in front).
        data_kind: "real" or "simulated".
        blocks: ``(kind, payload)`` items in order: ``("h", text)``, ``("p", text)``,
            ``("table", (header, rows))``, ``("figure", (name, png_bytes, caption))``.

    """

    title: str
    data_kind: str
    blocks: list[tuple[str, Any]] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.data_kind not in DATA_KINDS:
            raise ValueError(f"data_kind must be one of {DATA_KINDS}, got {self.data_kind!r}")

    @property
    def heading(self) -> str:
        """The title line every output starts with."""
        return f"{self.title} ({self.data_kind.upper()} data)"

    def heading2(self, text: str) -> None:
        """Add a section heading."""
        self.blocks.append(("h", text))

    def paragraph(self, text: str) -> None:
        """Add a paragraph (plain text; ``**bold**`` and `` `code` `` kept as is in Markdown)."""
        self.blocks.append(("p", text))

    def table(self, header: list[str], rows: list[list[Any]]) -> None:
        """Add a table; floats are written with 3 decimals."""
        self.blocks.append(("table", (header, [[_cell(v) for v in row] for row in rows])))

    def figure(self, name: str, fig: Any, caption: str) -> None:
        """Add a matplotlib ``Figure`` (Agg canvas, no pyplot), rendered to PNG now."""
        from matplotlib.backends.backend_agg import FigureCanvasAgg

        FigureCanvasAgg(fig)
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
        self.blocks.append(("figure", (name, buf.getvalue(), caption)))


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return "—" if value != value else f"{value:.3f}"
    return str(value)


def markdown(page: Page, stem: str) -> str:
    """The page as Markdown; figures link to ``<stem>_<name>.png``."""
    lines = [f"# {page.heading}", ""]
    for kind, payload in page.blocks:
        if kind == "h":
            lines += [f"## {payload}", ""]
        elif kind == "p":
            lines += [payload, ""]
        elif kind == "table":
            header, rows = payload
            lines.append("| " + " | ".join(header) + " |")
            lines.append("|" + "---|" * len(header))
            lines += ["| " + " | ".join(row) + " |" for row in rows]
            lines.append("")
        else:
            name, _, caption = payload
            lines += [f"![{caption}]({stem}_{name}.png)", "", f"*{caption}*", ""]
    return "\n".join(lines)


def html_page(page: Page) -> str:
    """The page as one self-contained HTML document (figures embedded)."""
    esc = html.escape
    parts = [
        "<!DOCTYPE html><html><head><meta charset='utf-8'>",
        f"<title>{esc(page.heading)}</title><style>body{{font-family:sans-serif;max-width:"
        "1100px;margin:auto}table{border-collapse:collapse}td,th{border:1px solid #ccc;"
        "padding:2px 6px;text-align:right}th{background:#eee}</style></head><body>",
        f"<h1>{esc(page.heading)}</h1>",
    ]
    for kind, payload in page.blocks:
        if kind == "h":
            parts.append(f"<h2>{esc(payload)}</h2>")
        elif kind == "p":
            parts.append(f"<p>{esc(payload)}</p>")
        elif kind == "table":
            header, rows = payload
            parts.append("<table><tr>" + "".join(f"<th>{esc(h)}</th>" for h in header) + "</tr>")
            for row in rows:
                parts.append("<tr>" + "".join(f"<td>{esc(c)}</td>" for c in row) + "</tr>")
            parts.append("</table>")
        else:
            _, png, caption = payload
            data = base64.b64encode(png).decode("ascii")
            parts.append(
                f"<figure><img src='data:image/png;base64,{data}' alt='{esc(caption)}'>"
                f"<figcaption>{esc(caption)}</figcaption></figure>"
            )
    parts.append("</body></html>")
    return "\n".join(parts)


def write_page(page: Page, numbers: dict[str, Any], out_dir: Path, stem: str) -> dict[str, Path]:
    """Write ``<stem>.json`` (``numbers`` plus title and data kind), ``.md`` + PNGs, ``.html``.

    Returns:
        ``{"json", "md", "html"}`` -> path.

    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {kind: out_dir / f"{stem}.{kind}" for kind in ("json", "md", "html")}
    payload = {"title": page.title, "data_kind": page.data_kind, **numbers}
    _write(paths["json"], json.dumps(payload, indent=2, default=_json_default))
    for kind, block in page.blocks:
        if kind == "figure":
            name, png, _ = block
            with atomic_output(out_dir / f"{stem}_{name}.png") as tmp:
                tmp.write_bytes(png)
    _write(paths["md"], markdown(page, stem))
    _write(paths["html"], html_page(page))
    return paths


def _write(path: Path, text: str) -> None:
    with atomic_output(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def _json_default(value: Any) -> Any:
    import numpy as np

    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating):
        return None if np.isnan(value) else float(value)
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")

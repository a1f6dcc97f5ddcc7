"""The comparison table (Markdown) and per-class F1 bar chart of a chain run."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import matplotlib

matplotlib.use("Agg")
import matplotlib.patches  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from iota2_spot_s2.io import atomic_output  # noqa: E402
from iota2_spot_s2.nomenclature import Nomenclature  # noqa: E402

if TYPE_CHECKING:
    from iota2_spot_s2.pipeline.chain import ModelRun


def _class_name(code: int, nomenclature: Nomenclature | None) -> str:
    return nomenclature.name_of(code) if nomenclature else str(code)


def comparison_markdown(
    runs: list[ModelRun], *, title: str, nomenclature: Nomenclature | None = None
) -> str:
    """One row per (tile, model): OA, kappa, mean F1, training time, mapping speed, per-class F1."""
    codes = sorted({c for r in runs for c in r.per_class_f1})
    head = ["tile", "model", "OA", "kappa", "mean F1", "train s", "best epoch", "map Mpx/s"]
    head += [f"F1 {_class_name(c, nomenclature)}" for c in codes]
    lines = [f"### {title}", "", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in runs:
        cells = [
            r.tile,
            r.model,
            f"{r.overall_accuracy:.3f}",
            f"{r.kappa:.3f}",
            f"{r.mean_f1:.3f}",
            f"{r.train_seconds:.0f}",
            str(r.best_epoch),
            f"{r.map_pixels_per_second / 1e6:.2f}",
        ]
        cells += [f"{r.per_class_f1.get(c, float('nan')):.2f}" for c in codes]
        lines.append("| " + " | ".join(cells) + " |")
    test_pixels = sorted({r.test_pixels for r in runs})
    lines += ["", f"Test pixels per tile: {', '.join(str(n) for n in test_pixels)}."]
    return "\n".join(lines)


def plot_comparison(
    runs: list[ModelRun], path: Path, *, title: str, nomenclature: Nomenclature | None = None
) -> Path:
    """Grouped bars of per-class F1, one group per class, one bar per (tile, model)."""
    codes = sorted({c for r in runs for c in r.per_class_f1})
    fig, ax = plt.subplots(figsize=(max(6.0, 0.9 * len(codes) + 2), 4.5))
    width = 0.8 / max(1, len(runs))
    x = np.arange(len(codes))
    for i, r in enumerate(runs):
        values = [r.per_class_f1.get(c, np.nan) for c in codes]
        ax.bar(x + i * width, values, width, label=f"{r.model} ({r.tile}) mean F1 {r.mean_f1:.2f}")
    ax.set_xticks(x + width * (len(runs) - 1) / 2)
    ax.set_xticklabels([_class_name(c, nomenclature) for c in codes], rotation=30, ha="right")
    ax.set_ylim(0, 1)
    ax.set_ylabel("F1 (test split)")
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8)
    fig.tight_layout()
    with atomic_output(path) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)
    return path


def _read_decimated(path: Path, bands: list[int], max_side: int) -> np.ndarray:
    import rasterio
    from rasterio.enums import Resampling

    with rasterio.open(path) as src:
        scale = max(1.0, max(src.width, src.height) / max_side)
        shape = (len(bands), int(src.height / scale), int(src.width / scale))
        return src.read(bands, out_shape=shape, resampling=Resampling.nearest)


def _rgb(image: np.ndarray) -> np.ndarray:
    """Bands (B, G, R, ...) to a 2-98 % stretched RGB array."""
    rgb = (image[[2, 1, 0]] if image.shape[0] >= 3 else image[[0, 0, 0]]).astype(np.float32)
    valid = rgb.sum(0) > 0
    lo = np.percentile(rgb[:, valid], 2, axis=1).astype(np.float32)[:, None, None]
    hi = np.percentile(rgb[:, valid], 98, axis=1).astype(np.float32)[:, None, None]
    return np.asarray(np.clip((rgb - lo) / np.maximum(hi - lo, 1e-6), 0, 1).transpose(1, 2, 0))


def _colourise(codes: np.ndarray, nomenclature: Nomenclature | None) -> np.ndarray:
    lut = np.zeros((int(max(codes.max(), 1)) + 1, 3), np.float32)
    table = nomenclature.color_table() if nomenclature else {}
    for code, rgba in table.items():
        if code < len(lut):
            lut[code] = np.asarray(rgba[:3]) / 255.0
    return lut[codes]


def plot_maps(
    image: Path,
    labels: Path,
    maps: dict[str, Path],
    path: Path,
    *,
    title: str,
    nomenclature: Nomenclature | None = None,
    max_side: int = 800,
) -> Path:
    """Side by side: image (RGB), reference labels, and each model's class map (decimated)."""
    panels = [("image (R, G, B)", _rgb(_read_decimated(image, [1, 2, 3], max_side)))]
    panels.append(
        ("reference", _colourise(_read_decimated(labels, [1], max_side)[0], nomenclature))
    )
    for name, class_map in maps.items():
        panels.append(
            (name, _colourise(_read_decimated(class_map, [1], max_side)[0], nomenclature))
        )
    ncols = min(4, len(panels))
    nrows = -(-len(panels) // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(4.2 * ncols, 4.4 * nrows + 0.6), squeeze=False)
    for ax in axes.ravel():
        ax.set_axis_off()
    for ax, (name, data) in zip(axes.ravel(), panels, strict=False):
        ax.imshow(data, interpolation="nearest")
        ax.set_title(name, fontsize=10)
    if nomenclature is not None:
        table = nomenclature.color_table()
        handles = [
            matplotlib.patches.Patch(
                color=(table[c][0] / 255, table[c][1] / 255, table[c][2] / 255),
                label=nomenclature.name_of(c),
            )
            for c in nomenclature.codes
        ]
        fig.legend(handles=handles, loc="lower center", ncol=min(len(handles), 6), fontsize=8)
    fig.suptitle(title, fontsize=11)
    fig.tight_layout(rect=(0, 0.06, 1, 0.96))
    with atomic_output(path) as tmp:
        fig.savefig(tmp, dpi=100, format="png")
    plt.close(fig)
    return path

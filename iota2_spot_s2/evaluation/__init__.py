"""Accuracy assessment of class maps: confusion matrices, scores, reports in iota2/OTB formats.

- :func:`confusion_matrix` / :class:`ConfusionAccumulator` (rows = reference, columns =
  produced, reference 0 ignored) on arrays, window by window for large rasters;
- :func:`evaluate_rasters` / :func:`accumulate_rasters` on two rasters of one grid, optionally
  restricted to a split (``mask`` + ``mask_values``);
- :func:`score_map` scores a class map on a label raster (and split subset) window by window,
  unmapped labelled pixels in a "no decision" column: what ``run`` and ``evaluate`` use;
- :func:`scores` -> :class:`Scores` (OA, kappa, per-class precision/recall/F1, mean F1);
- :func:`write_report` writes JSON, an OTB ``ComputeConfusionMatrix``-layout CSV and a PNG
  heatmap; :func:`read_otb_confusion_csv` reads OTB's (and iota2's) CSVs.

Example::

    cm = evaluate_rasters("reference.tif", "map.tif", codes, mask="split.tif", mask_values=[3])
    s = scores(cm, codes)
    write_report(s, cm, codes, "out", title="real data, FCN map, test split", nomenclature=nom)
"""

from iota2_spot_s2.evaluation.confusion import (
    ConfusionAccumulator,
    align_matrix,
    confusion_matrix,
)
from iota2_spot_s2.evaluation.map_scoring import MapScore, present_codes, score_map
from iota2_spot_s2.evaluation.metrics import Scores, scores
from iota2_spot_s2.evaluation.otb_csv import (
    format_otb_confusion_csv,
    read_otb_confusion_csv,
    write_otb_confusion_csv,
)
from iota2_spot_s2.evaluation.plot import plot_confusion
from iota2_spot_s2.evaluation.rasters import accumulate_rasters, evaluate_rasters
from iota2_spot_s2.evaluation.report import class_names, read_report, write_report

__all__ = [
    "ConfusionAccumulator",
    "MapScore",
    "Scores",
    "accumulate_rasters",
    "align_matrix",
    "class_names",
    "confusion_matrix",
    "evaluate_rasters",
    "format_otb_confusion_csv",
    "plot_confusion",
    "present_codes",
    "read_otb_confusion_csv",
    "read_report",
    "score_map",
    "scores",
    "write_otb_confusion_csv",
    "write_report",
]

"""``fuse-classify evaluate``: a class map scored on a reference, window by window."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from iota2_spot_s2.errors import InputError
from iota2_spot_s2.grid import Grid
from iota2_spot_s2.io import undo_on_failure, written_or_refused
from iota2_spot_s2.pipeline.stages import RASTER_SUFFIXES, SUBSETS, check_on_grid, class_map_grid


def evaluate_from_files(
    *,
    reference: Path,
    produced: Path,
    out_dir: Path,
    field: str = "code",
    split: Path | None = None,
    subset: str = "test",
    title: str | None = None,
    codes: list[int] | None = None,
    bootstrap_block: int | None = None,
) -> Any:
    """``fuse-classify evaluate``: confusion matrix and scores of a map on a reference subset.

    Labelled pixels the map leaves unmapped (0 or a code outside the classes) are errors: they
    get a "no decision" column (code ``max + 1``) and their count goes in the JSON
    (``unmapped_labelled_pixels``). With ``bootstrap_block`` the JSON also holds 95 % intervals
    of OA, kappa, mean F1 and class F1 from a block bootstrap (:mod:`iota2_spot_s2.evaluation.
    bootstrap`, blocks of that many pixels). Every raster is read window by window (a vector
    reference is first rasterized window by window into a temporary file): memory stays flat
    whatever the map size.
    """
    import tempfile

    from iota2_spot_s2.evaluation import scores, write_report
    from iota2_spot_s2.evaluation.bootstrap import bootstrap_scores
    from iota2_spot_s2.evaluation.map_scoring import present_codes, score_map

    grid = class_map_grid(produced)
    with tempfile.TemporaryDirectory(prefix="evaluate-") as tmp:
        labels = label_raster_on_grid(reference, grid, field, Path(tmp) / "labels.tif")
        subset_value = None
        if split is not None:
            check_on_grid(split, grid, "split raster")
            subset_value = SUBSETS[subset]
        codes = codes or present_codes(labels, split_path=split, subset=subset_value)
        if not codes:
            raise InputError(reference, "no labelled pixel in the evaluated subset")
        scored_map = score_map(labels, produced, codes, split_path=split, subset=subset_value,
                               bootstrap_block=bootstrap_block)  # fmt: skip
    n_unmapped = scored_map.unmapped
    k = len(codes) + (1 if n_unmapped else 0)  # the no-decision column only when needed
    scored, cm = scored_map.scored_codes[:k], scored_map.matrix[:k, :k]
    if n_unmapped and n_unmapped == int(cm.sum()):  # not one reference code in the map
        raise InputError(reference, f"none of its codes {codes[:10]} is in the map {produced}: "
                         "wrong reference, field or map?")  # fmt: skip
    result = scores(cm, scored)
    extra: dict[str, Any] = {"unmapped_labelled_pixels": n_unmapped}
    if n_unmapped:
        extra["no_decision_code"] = scored[-1]
    if bootstrap_block:
        intervals = bootstrap_scores(scored_map.block_matrices(with_no_decision=k > len(codes)),
                                     scored)  # fmt: skip
        intervals["f1"] = {c: v for c, v in intervals["f1"].items() if c in codes}
        extra["bootstrap"] = {"block_px": bootstrap_block, **intervals}
    title = title or f"{produced.name} vs {reference.name} ({subset if split else 'all'} pixels)"
    with undo_on_failure(out_dir), written_or_refused(out_dir, "the report"):
        write_report(result, cm, scored, out_dir, title=title, extra=extra)
    return result


def label_raster_on_grid(reference: Path, grid: Grid, field: str, scratch: Path) -> Path:
    """A label raster on ``grid`` read window by window: the user's (checked) or a rasterized one.

    A vector ``reference`` is rasterized into ``scratch``; a raster one must lie on ``grid``.

    Raises:
        InputError: Off-grid or invalid label raster, unreadable vector.
    """
    from iota2_spot_s2.reference.windowed import check_label_raster, rasterize_to_file

    if reference.suffix.lower() in RASTER_SUFFIXES:
        check_on_grid(reference, grid, "reference raster")
        check_label_raster(reference)
        return reference
    rasterize_to_file(reference, grid, field, scratch)
    return scratch

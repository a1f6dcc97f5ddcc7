"""Spatially disjoint train / validation / test splits of a label raster.

Split raster values: ``0`` unassigned (no-data label), :data:`TRAIN` = 1, :data:`VAL` = 2,
:data:`TEST` = 3. Two ways to form the indivisible units ("groups"):

- :func:`split_blocks`: square blocks of ``block_size`` pixels aligned on the raster's top-left
  corner; a block goes whole to one subset, so neighbouring training and test pixels are at
  least a block edge apart inside a block (autocorrelation is cut at block borders only).
- :func:`split_polygons`: reference polygons (a feature-id raster from
  ``rasterize_reference(..., feature_ids=True)``); each polygon goes whole to one subset, like
  iota2's polygon-wise split. Adjacent polygons may land in different subsets.

Stratification (:func:`assign_groups`): groups are described by their per-class pixel counts.
They are assigned greedily, biggest relative weight first with seeded random jitter, each to the
subset where it most reduces the squared deviation from the target fractions, measured per
class (each class relative to its own total) and for all pixels together; then single-group
moves and pairwise swaps improve that cost until no step helps. The result depends only on the
input and the seed.
"""

from __future__ import annotations

import numpy as np

TRAIN, VAL, TEST = 1, 2, 3
SUBSET_NAMES = {TRAIN: "train", VAL: "val", TEST: "test"}
DEFAULT_FRACTIONS = (0.64, 0.16, 0.20)
_SWAP_SAMPLE = 256
_SUMMARY_ROWS = 512


def _check_fractions(fractions: tuple[float, float, float]) -> np.ndarray:
    f = np.asarray(fractions, dtype=float)
    if f.shape != (3,) or np.any(f < 0) or not np.isclose(f.sum(), 1.0, atol=1e-6):
        raise ValueError(f"fractions must be 3 non-negative numbers summing to 1, got {fractions}")
    return f


class _Cost:
    """Incremental squared-deviation cost of an assignment (subsets 0..2 internally)."""

    def __init__(self, hist: np.ndarray, fractions: np.ndarray) -> None:
        totals = hist.sum(axis=0)
        n = totals.sum()
        # columns: classes, then one "all pixels" column weighted like all classes together
        self.h = np.column_stack([hist, hist.sum(axis=1)]).astype(float)
        k = hist.shape[1]
        self.w = np.concatenate([1.0 / np.maximum(totals, 1) ** 2, [k / max(n, 1) ** 2]])
        self.err = -np.outer(fractions, np.concatenate([totals, [n]])).astype(float)

    def delta_move(self, d: np.ndarray, src: int, dst: int) -> np.ndarray:
        """Cost change of moving pixel counts ``d`` (rows) from subset ``src`` to ``dst``."""
        gap = self.err[dst] - self.err[src]
        return (self.w * (2 * d * d + 2 * d * gap)).sum(axis=-1)

    def apply(self, d: np.ndarray, src: int | None, dst: int) -> None:
        if src is not None:
            self.err[src] -= d
        self.err[dst] += d


def assign_groups(
    histograms: np.ndarray,
    *,
    seed: int,
    fractions: tuple[float, float, float] = DEFAULT_FRACTIONS,
    max_passes: int = 20,
) -> np.ndarray:
    """Assign each group to a subset, stratified by class.

    Args:
        histograms: ``(n_groups, n_classes)`` pixel (or area) counts per group and class.
        seed: Random seed; same inputs and seed give the same result.
        fractions: Target shares of train, validation, test.
        max_passes: Upper bound on improvement passes.

    Returns:
        uint8 ``(n_groups,)``: TRAIN, VAL or TEST; 0 for groups without any pixel.

    """
    f = _check_fractions(fractions)
    hist = np.asarray(histograms, dtype=float)
    out = np.zeros(len(hist), dtype=np.uint8)
    active = np.flatnonzero(hist.sum(axis=1) > 0)
    if len(active) == 0:
        return out
    h = hist[active]
    rng = np.random.default_rng(seed)
    cost = _Cost(h, f)
    sub = _greedy(cost, h, f, rng)
    for _ in range(max_passes):
        moved = _move_pass(cost, sub, rng) + _swap_pass(cost, sub, rng)
        if moved == 0:
            break
    out[active] = sub + 1
    return out


def _greedy(cost: _Cost, h: np.ndarray, f: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    weight = (cost.h[:, :-1] * np.sqrt(cost.w[:-1])).sum(axis=1)
    order = np.argsort(-weight * rng.uniform(0.5, 1.5, len(h)), kind="stable")
    sub = np.zeros(len(h), dtype=np.int64)
    allowed = np.flatnonzero(f > 0)
    for g in order:
        d = cost.h[g]
        gain = np.array([(cost.w * (d * d + 2 * d * cost.err[s])).sum() for s in allowed])
        gain += rng.uniform(0, 1e-12, len(allowed))
        s = int(allowed[np.argmin(gain)])
        cost.apply(d, None, s)
        sub[g] = s
    return sub


def _move_pass(cost: _Cost, sub: np.ndarray, rng: np.random.Generator) -> int:
    moved = 0
    for g in rng.permutation(len(sub)):
        src = int(sub[g])
        deltas = np.array(
            [cost.delta_move(cost.h[g], src, dst) if dst != src else 0.0 for dst in range(3)]
        )
        dst = int(np.argmin(deltas))
        if dst != src and deltas[dst] < -1e-12:
            cost.apply(cost.h[g], src, dst)
            sub[g] = dst
            moved += 1
    return moved


def _swap_pass(cost: _Cost, sub: np.ndarray, rng: np.random.Generator) -> int:
    swapped = 0
    for g in rng.permutation(len(sub)):
        src = int(sub[g])
        for dst in range(3):
            members = np.flatnonzero(sub == dst)
            if dst == src or len(members) == 0:
                continue
            if len(members) > _SWAP_SAMPLE:
                members = rng.choice(members, _SWAP_SAMPLE, replace=False)
            d = cost.h[g] - cost.h[members]
            delta = cost.delta_move(d, src, dst)
            best = int(np.argmin(delta))
            if delta[best] < -1e-12:
                other = int(members[best])
                cost.apply(d[best], src, dst)
                sub[g], sub[other] = dst, src
                swapped += 1
                break
    return swapped


def _class_index(labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sorted non-zero codes and, per pixel, the code's index (-1 for no-data)."""
    codes = np.unique(labels)
    codes = codes[codes != 0]
    idx = np.searchsorted(codes, labels)
    idx = np.where(labels == 0, -1, idx)
    return codes, idx


def _split_by_groups(
    labels: np.ndarray, groups: np.ndarray, n_groups: int, seed: int, fractions: tuple
) -> np.ndarray:
    codes, cls = _class_index(labels)
    valid = cls >= 0
    hist = np.bincount(
        groups[valid] * len(codes) + cls[valid], minlength=n_groups * max(len(codes), 1)
    ).reshape(n_groups, max(len(codes), 1))
    subset = assign_groups(hist, seed=seed, fractions=fractions)
    split = subset[groups]
    split[~valid] = 0
    return split.astype(np.uint8)


def block_ids(shape: tuple[int, int], block_size: int) -> np.ndarray:
    """int64 raster numbering ``block_size`` x ``block_size`` blocks row by row from 0."""
    if block_size < 1:
        raise ValueError("block_size must be >= 1")
    rows = np.arange(shape[0]) // block_size
    cols = np.arange(shape[1]) // block_size
    n_cols = -(-shape[1] // block_size)
    return rows[:, None] * n_cols + cols[None, :]


def split_blocks(
    labels: np.ndarray,
    *,
    block_size: int,
    seed: int,
    fractions: tuple[float, float, float] = DEFAULT_FRACTIONS,
) -> np.ndarray:
    """Split a label raster by whole square blocks, stratified by class.

    Args:
        labels: 2-D integer class codes, 0 = no-data.
        block_size: Block edge in pixels (make it larger than the model's receptive field if
            train and test must not share context).
        seed: Random seed.
        fractions: Target shares of labelled pixels for train, validation, test.

    Returns:
        uint8 raster of the same shape: 0 where ``labels == 0``, else TRAIN / VAL / TEST.

    """
    labels = np.asarray(labels)
    counts = BlockCounts(labels.shape, block_size)
    strips = range(0, labels.shape[0], block_size)  # no int64 copy of the scene
    for y in strips:
        counts.add(labels[y : y + block_size], y, 0)
    subsets = counts.assign(seed=seed, fractions=fractions)
    split = np.zeros(labels.shape, dtype=np.uint8)
    for y in strips:
        split[y : y + block_size] = counts.split_window(subsets, labels[y : y + block_size], y, 0)
    return split


class BlockCounts:
    """Per-block, per-class pixel counts of a label raster, added window by window.

    What :func:`split_blocks` assigns, gathered from windows of any size and order (e.g. read
    from a file), so that a scene is split without holding it: ``add`` every window, ``assign``
    the blocks once, then ``split_window`` gives each window's split. Same counts, same seed:
    the same split as :func:`split_blocks` on the whole array.
    """

    def __init__(self, shape: tuple[int, int], block_size: int) -> None:
        if block_size < 1:
            raise ValueError("block_size must be >= 1")
        self.block = int(block_size)
        self.n_cols = -(-int(shape[1]) // self.block)
        self.n_groups = max(1, -(-int(shape[0]) // self.block) * self.n_cols)
        self._counts: dict[int, np.ndarray] = {}

    def group_ids(self, row: int, col: int, height: int, width: int) -> np.ndarray:
        """Block number of each pixel of a window (row-major blocks from the raster's corner)."""
        rows = (np.arange(row, row + height) // self.block)[:, None]
        cols = (np.arange(col, col + width) // self.block)[None, :]
        return rows * self.n_cols + cols

    def add(self, labels: np.ndarray, row: int, col: int) -> None:
        """Count the labelled pixels of the window whose top-left pixel is ``(row, col)``."""
        valid = labels != 0
        if not valid.any():
            return
        groups = self.group_ids(row, col, *labels.shape)[valid]
        values = labels[valid]
        for code in np.unique(values):
            counts = self._counts.setdefault(int(code), np.zeros(self.n_groups, np.int64))
            counts += np.bincount(groups[values == code], minlength=self.n_groups)

    def histogram(self) -> tuple[np.ndarray, np.ndarray]:
        """Sorted codes and the ``(n_blocks, max(1, n_codes))`` pixel counts."""
        codes = np.array(sorted(self._counts), dtype=np.int64)
        if codes.size == 0:
            return codes, np.zeros((self.n_groups, 1), np.int64)
        return codes, np.stack([self._counts[int(c)] for c in codes], axis=1)

    def assign(
        self, *, seed: int, fractions: tuple[float, float, float] = DEFAULT_FRACTIONS
    ) -> np.ndarray:
        """Subset of every block (:func:`assign_groups` on the counts)."""
        return assign_groups(self.histogram()[1], seed=seed, fractions=fractions)

    def split_window(
        self, subsets: np.ndarray, labels: np.ndarray, row: int, col: int
    ) -> np.ndarray:
        """uint8 split of one window: its block's subset where labelled, else 0."""
        blocks = subsets[self.group_ids(row, col, *labels.shape)]
        return np.where(labels != 0, blocks, 0).astype(np.uint8)


def split_polygons(
    feature_ids: np.ndarray,
    labels: np.ndarray,
    *,
    seed: int,
    fractions: tuple[float, float, float] = DEFAULT_FRACTIONS,
) -> np.ndarray:
    """Split by whole polygons, stratified by class.

    Args:
        feature_ids: Integer raster naming the polygon of each pixel (0 = none), e.g.
            ``rasterize_reference(..., feature_ids=True).feature_ids``.
        labels: Class codes on the same grid, 0 = no-data.
        seed: Random seed.
        fractions: Target shares of labelled pixels.

    Returns:
        uint8 split raster; pixels with no polygon or no label get 0.

    """
    feature_ids, labels = np.asarray(feature_ids), np.asarray(labels)
    if feature_ids.shape != labels.shape:
        raise ValueError("feature_ids and labels must have the same shape")
    uniq, groups = np.unique(feature_ids, return_inverse=True)
    groups = groups.reshape(feature_ids.shape)
    masked = np.where(feature_ids == 0, 0, labels)
    return _split_by_groups(masked, groups, len(uniq), seed, fractions)


def split_summary(labels: np.ndarray, split: np.ndarray) -> dict[str, object]:
    """Per-subset pixel counts and shares of labelled pixels, and per-class counts (JSON-ready).

    Returns:
        ``{"labelled_pixels": n, "unassigned_labelled_pixels": n,
        "subsets": {"train": {"pixels": n, "share": x}, ...},
        "classes": {"<code>": {"train": n, "val": n, "test": n, "total": n}, ...}}``

    """
    labels, split = np.asarray(labels), np.asarray(split)
    counts = SplitCounts()
    for y in range(0, labels.shape[0], _SUMMARY_ROWS):  # strips: no scene-sized temporaries
        counts.add(labels[y : y + _SUMMARY_ROWS], split[y : y + _SUMMARY_ROWS])
    return counts.summary()


class SplitCounts:
    """The counts behind :func:`split_summary`, added window by window."""

    def __init__(self) -> None:
        self.per_class: dict[int, np.ndarray] = {}  # code -> unassigned, train, val, test, total

    def add(self, labels: np.ndarray, split: np.ndarray) -> None:
        """Count one window of labels and its split."""
        lab, sub = np.asarray(labels).ravel(), np.asarray(split).ravel()
        labelled = lab != 0
        lab, sub = lab[labelled], sub[labelled]
        for code in np.unique(lab):
            values = sub[lab == code]
            row = self.per_class.setdefault(int(code), np.zeros(5, dtype=np.int64))
            known = values[(values >= 0) & (values <= 3)].astype(np.intp)
            row[:4] += np.bincount(known, minlength=4)
            row[4] += values.size

    def summary(self) -> dict[str, object]:
        """The JSON-ready summary (see :func:`split_summary`)."""
        per_class = self.per_class
        n = sum(int(row[4]) for row in per_class.values())
        subsets = {}
        for value, name in SUBSET_NAMES.items():
            count = sum(int(row[value]) for row in per_class.values())
            subsets[name] = {"pixels": count, "share": count / n if n else 0.0}
        classes: dict[str, dict[str, int]] = {}
        for code in sorted(per_class):
            row = {name: int(per_class[code][v]) for v, name in SUBSET_NAMES.items()}
            row["total"] = int(per_class[code][4])
            classes[str(code)] = row
        return {
            "labelled_pixels": n,
            "unassigned_labelled_pixels": sum(int(row[0]) for row in per_class.values()),
            "subsets": subsets,
            "classes": classes,
        }

"""Reference data: mapping tables, rasterized labels with a report, disjoint splits.

- :func:`read_mapping_table` reads ``source,target`` CSV tables (source product code -> ours).
- :func:`rasterize_reference` burns a vector layer onto a :class:`~iota2_spot_s2.grid.Grid`.
- :func:`split_blocks` / :func:`split_polygons` make stratified, spatially disjoint
  train / validation / test splits (:data:`TRAIN`, :data:`VAL`, :data:`TEST`);
  :func:`split_summary` describes one.
"""

from iota2_spot_s2.reference.mapping import read_mapping_table, source_key
from iota2_spot_s2.reference.rasterize import (
    RasterizeReport,
    RasterizeResult,
    rasterize_reference,
    write_labels,
)
from iota2_spot_s2.reference.split import (
    DEFAULT_FRACTIONS,
    SUBSET_NAMES,
    TEST,
    TRAIN,
    VAL,
    assign_groups,
    block_ids,
    split_blocks,
    split_polygons,
    split_summary,
)
from iota2_spot_s2.reference.vector import Features, read_features

__all__ = [
    "DEFAULT_FRACTIONS",
    "SUBSET_NAMES",
    "TEST",
    "TRAIN",
    "VAL",
    "Features",
    "RasterizeReport",
    "RasterizeResult",
    "assign_groups",
    "block_ids",
    "rasterize_reference",
    "read_features",
    "read_mapping_table",
    "source_key",
    "split_blocks",
    "split_polygons",
    "split_summary",
    "write_labels",
]

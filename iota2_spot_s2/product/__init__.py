"""The OSO-style land-cover product (after inference / fusion).

- :func:`write_oso_product`: class, confidence and validity rasters plus a vector layer
  regularised to a minimum mapping unit (GeoPackage), on OSO's 23 classes and colours.
- :func:`write_validity`: cloud-free Sentinel-2 dates per pixel on a map's grid.
- :func:`sieve_to_mmu`, :func:`majority_filter`, :func:`label_patches`: the regularisation.
- :data:`OSO_TABLES`, :func:`totality_problems`: mapping tables from RPG, OCS GE and BD TOPO
  to OSO codes, and the check that each is total on its declared source codes.

The sub-command ``fuse-classify product`` (:mod:`iota2_spot_s2.cli_product`) is one call into
:func:`write_oso_product`. See ``docs/product.md``.
"""

from iota2_spot_s2.product.legend import OSO_CLASSES, oso_nomenclature
from iota2_spot_s2.product.oso import DEFAULT_MMU_HA, OsoProduct, write_oso_product
from iota2_spot_s2.product.regularize import (
    SieveReport,
    label_patches,
    majority_filter,
    mmu_pixels,
    sieve_to_mmu,
)
from iota2_spot_s2.product.tables import (
    OSO_TABLES,
    TableSpec,
    read_recode_table,
    totality_problems,
)
from iota2_spot_s2.product.validity import clear_date_count, write_validity

__all__ = [
    "DEFAULT_MMU_HA",
    "OSO_CLASSES",
    "OSO_TABLES",
    "OsoProduct",
    "SieveReport",
    "TableSpec",
    "clear_date_count",
    "label_patches",
    "majority_filter",
    "mmu_pixels",
    "oso_nomenclature",
    "read_recode_table",
    "sieve_to_mmu",
    "totality_problems",
    "write_oso_product",
    "write_validity",
]

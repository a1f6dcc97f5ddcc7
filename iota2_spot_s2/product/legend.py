"""The OSO land-cover nomenclature (CESBIO / Theia "OCS" product, 23 classes since 2018).

Kept in code so that an installed package (without the repository's ``plugin_config/``) can
write an OSO product; ``tests/test_product_oso.py`` checks it equals
``plugin_config/nomenclature_oso.txt`` + ``colorFile_oso.txt`` + ``hierarchy_oso.csv``.
"""

from __future__ import annotations

from iota2_spot_s2.nomenclature import Nomenclature

#: ``(code, name, (r, g, b))`` of the 23 OSO classes, colours of the published legend.
OSO_CLASSES: tuple[tuple[int, str, tuple[int, int, int]], ...] = (
    (1, "Bâti dense", (255, 0, 255)),
    (2, "Bâti diffus", (255, 85, 255)),
    (3, "Zones industrielles et commerciales", (255, 170, 255)),
    (4, "Surfaces routes", (0, 255, 255)),
    (5, "Colza", (255, 255, 0)),
    (6, "Céréales à paille", (208, 255, 0)),
    (7, "Protéagineux", (161, 214, 0)),
    (8, "Soja", (255, 171, 68)),
    (9, "Tournesol", (214, 214, 0)),
    (10, "Maïs", (255, 85, 0)),
    (11, "Riz", (197, 255, 255)),
    (12, "Tubercules/racines", (170, 170, 97)),
    (13, "Prairies", (170, 170, 0)),
    (14, "Vergers", (170, 170, 255)),
    (15, "Vignes", (85, 0, 0)),
    (16, "Forêts de feuillus", (0, 156, 0)),
    (17, "Forêts de conifères", (0, 50, 0)),
    (18, "Pelouses", (170, 255, 0)),
    (19, "Landes ligneuses", (85, 170, 127)),
    (20, "Surfaces minérales", (255, 0, 0)),
    (21, "Plages et dunes", (255, 184, 2)),
    (22, "Glaciers ou neiges", (190, 190, 190)),
    (23, "Eau", (0, 0, 255)),
)


def oso_nomenclature() -> Nomenclature:
    """The 23-class OSO nomenclature with its colours (no coarser levels)."""
    return Nomenclature(
        tuple(c for c, _, _ in OSO_CLASSES),
        tuple(n for _, n, _ in OSO_CLASSES),
        tuple(rgb for _, _, rgb in OSO_CLASSES),
    )

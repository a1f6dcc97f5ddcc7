"""iota2's file names and folders, in one place.

Per tile, seed ``S`` and model (region) ``M``, iota2 writes in ``<output_path>/classif/``::

    Classif_<TILE>_model_<M>_seed_<S>[_<SUFFIX>].tif          class codes, uint8, 0 = nodata
    <TILE>_model_<M>_confidence_seed_<S>[_<SUFFIX>].tif       float32 in [0, 1]
    PROBAMAP_<TILE>_model_<M>_seed_<S>[_<SUFFIX>].tif         uint16 0-1000, one band per class
                                                              in increasing code order

iota2 itself uses the suffixes ``_SAR`` (SAR classifier) and ``_DS`` (Dempster–Shafer fusion of
SAR and optical, with its choice map ``final/TMP/DSchoice_<TILE>_model_<M>_seed_<S>.tif``);
this plugin adds ``_SPOT`` for the SPOT FCN step. The learning / validation polygons iota2 draws
per tile and seed are ``dataAppVal/<TILE>_seed_<S>_{learn,val}.sqlite``; the userFeat tree is
``<user_feat_path>/<TILE>/<file whose name holds the pattern>``.

**Nothing of ours may match iota2's mosaic globs.** iota2 2020's mosaic
(``Validation/ClassificationShaping.py``) sums, per tile and seed, every file of ``classif/``
*and its subfolders* (``Common/FileUtils.py: FileSearch_AND`` walks with ``os.walk``, dotfiles
included) whose name holds ``Classif``, ``seed_<S>`` and ``.tif`` (``classif_shaping``), takes the
first ``<TILE>*model*confidence_seed_<S>*.tif`` of ``classif/`` as the tile's confidence
(``genGlobalConfidence``) and every ``classif/PROBAMAP_*_model_*_seed_<S>*.tif``. With
``argTrain.dempster_shafer_SAR_Opt_fusion : True`` the same globs end in ``DS.tif`` / ``*DS*``:
the ``_DS`` files replace iota2's plain ones. Hence:

- the SPOT step's ``_SPOT`` files (:func:`classif_names` with :data:`SPOT_SUFFIX`) go to
  ``<output_path>/spot_s2/classif/`` (:func:`plugin_classif_dir`), beside ``classif/``, never
  inside it;
- the decision route's ``_DS`` files go to ``classif/`` (and the choice map to ``final/TMP/``,
  as iota2's own SAR/optical fusion does) only when iota2's mosaic takes ``_DS`` files alone,
  i.e. when the cfg sets ``dempster_shafer_SAR_Opt_fusion``; otherwise to
  ``spot_s2/classif/`` (:func:`fused_paths`), and iota2's ``final/`` stays iota2's own map.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from iota2_spot_s2.fusion import iota2_names as ds_names

SPOT_SUFFIX = "SPOT"
DS_SUFFIX = "DS"
#: the plugin's folder inside ``output_path`` (models, maps, reports, its ``classif/``).
PLUGIN_DIR = "spot_s2"
#: userFeat patterns of the SPOT-derived feature rasters (one file each per tile).
USER_FEAT_PATTERNS = {"probabilities": "SPOT_FCN_PROBA", "texture": "SPOT_TEXTURE"}

_CLASSIF = re.compile(r"^Classif_(?P<tile>.+)_model_(?P<model>[^_]+)_seed_(?P<seed>\d+)\.tif$")


@dataclass(frozen=True)
class ClassifNames:
    """The three ``classif/`` files of one tile, model and seed.

    ``plugin`` marks the plugin's own files (the ``_SPOT`` suffix): they never go into iota2's
    ``classif/`` folder (module docstring).
    """

    classes: str
    confidence: str
    proba: str
    plugin: bool = False

    def paths(self, classif: Path) -> dict[str, Path]:
        """``{"classes", "confidence", "proba"}`` -> path, for iota2's folder ``classif``.

        iota2's own names lie in ``classif`` (``<output_path>/classif``); the plugin's in
        ``<output_path>/spot_s2/classif`` beside it (:func:`plugin_classif_dir`).
        """
        folder = classif.parent / PLUGIN_DIR / "classif" if self.plugin else classif
        return {
            "classes": folder / self.classes,
            "confidence": folder / self.confidence,
            "proba": folder / self.proba,
        }


def classif_names(tile: str, model: str | int, seed: int, suffix: str = "") -> ClassifNames:
    """iota2's ``classif/`` names; ``suffix`` e.g. ``"SPOT"`` gives ``..._seed_0_SPOT.tif``."""
    end = f"_{suffix}" if suffix else ""
    return ClassifNames(
        classes=f"Classif_{tile}_model_{model}_seed_{seed}{end}.tif",
        confidence=f"{tile}_model_{model}_confidence_seed_{seed}{end}.tif",
        proba=f"PROBAMAP_{tile}_model_{model}_seed_{seed}{end}.tif",
        plugin=suffix == SPOT_SUFFIX,
    )


def plugin_classif_dir(output_path: Path) -> Path:
    """``<output_path>/spot_s2/classif``: the plugin's tile maps, out of iota2's mosaic globs."""
    return output_path / PLUGIN_DIR / "classif"


def spot_paths(output_path: Path, tile: str, model: str | int, seed: int) -> dict[str, Path]:
    """The SPOT step's three files of one tile and seed (``spot_s2/classif/*_SPOT.tif``)."""
    return classif_names(tile, model, seed, SPOT_SUFFIX).paths(output_path / "classif")


def fused_paths(
    output_path: Path, tile: str, model: str | int, seed: int, *, into_iota2: bool = False
) -> dict[str, Path]:
    """Where a decision-level fusion goes (iota2's ``_DS`` names in either case).

    Args:
        output_path: iota2's ``chain.output_path``.
        tile: Tile name.
        model: iota2's model (region) name.
        seed: iota2's seed.
        into_iota2: True when iota2's mosaic takes the ``_DS`` files in place of its own
            (``dempster_shafer_SAR_Opt_fusion``): ``classif/*_DS.tif`` and
            ``final/TMP/DSchoice_*``, as iota2's SAR/optical fusion writes them. False:
            everything in ``spot_s2/classif/``, which iota2's mosaic never reads.

    """
    names = ds_names(tile, model, seed)
    classif = output_path / "classif" if into_iota2 else plugin_classif_dir(output_path)
    choice = output_path / "final" / "TMP" if into_iota2 else classif
    return {
        "classes": classif / names["classes"],
        "confidence": classif / names["confidence"],
        "proba": classif / names["proba"],
        "choice": choice / names["choice"],
    }


def parse_classif_name(name: str) -> tuple[str, str, int] | None:
    """``(tile, model, seed)`` of an iota2 class map name without suffix, else None."""
    match = _CLASSIF.match(name)
    if match is None:
        return None
    return match["tile"], match["model"], int(match["seed"])


def validation_vector(output_path: Path, tile: str, seed: int) -> Path:
    """iota2's validation polygons of a tile and seed (``dataAppVal/``)."""
    return output_path / "dataAppVal" / f"{tile}_seed_{seed}_val.sqlite"


def learning_vector(output_path: Path, tile: str, seed: int) -> Path:
    """iota2's learning polygons of a tile and seed (``dataAppVal/``)."""
    return output_path / "dataAppVal" / f"{tile}_seed_{seed}_learn.sqlite"


def user_feat_file(user_feat_path: Path, tile: str, feature: str) -> Path:
    """The userFeat raster of one SPOT feature kind for one tile."""
    return user_feat_path / tile / f"{tile}_{USER_FEAT_PATTERNS[feature]}.tif"


def final_classification(output_path: Path, seed: int) -> Path:
    """iota2's mosaic ``final/Classif_Seed_<S>.tif``."""
    return output_path / "final" / f"Classif_Seed_{seed}.tif"

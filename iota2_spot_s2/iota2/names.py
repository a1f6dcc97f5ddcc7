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
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from iota2_spot_s2.fusion import iota2_names as ds_names

SPOT_SUFFIX = "SPOT"
DS_SUFFIX = "DS"
#: userFeat patterns of the SPOT-derived feature rasters (one file each per tile).
USER_FEAT_PATTERNS = {"probabilities": "SPOT_FCN_PROBA", "texture": "SPOT_TEXTURE"}

_CLASSIF = re.compile(r"^Classif_(?P<tile>.+)_model_(?P<model>[^_]+)_seed_(?P<seed>\d+)\.tif$")


@dataclass(frozen=True)
class ClassifNames:
    """The three ``classif/`` files of one tile, model and seed."""

    classes: str
    confidence: str
    proba: str

    def paths(self, folder: Path) -> dict[str, Path]:
        """``{"classes", "confidence", "proba"}`` -> path under ``folder``."""
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
    )


def fused_paths(output_path: Path, tile: str, model: str | int, seed: int) -> dict[str, Path]:
    """Where a decision-level fusion goes: ``classif/*_DS.tif`` and ``final/TMP/DSchoice_*``."""
    names = ds_names(tile, model, seed)
    classif = output_path / "classif"
    return {
        "classes": classif / names["classes"],
        "confidence": classif / names["confidence"],
        "proba": classif / names["proba"],
        "choice": output_path / "final" / "TMP" / names["choice"],
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

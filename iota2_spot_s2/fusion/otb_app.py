"""OTB's ``FusionOfClassifications`` on class-map files, through :func:`iota2_spot_s2.otb.run_app`.

This is what iota2 runs for its ``_DS`` maps; :mod:`iota2_spot_s2.fusion.ds_otb` and
``majority_vote(ties="otb")`` reproduce it in NumPy, and the tests check them against it.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from iota2_spot_s2.evaluation import write_otb_confusion_csv
from iota2_spot_s2.fusion._inputs import MOBS, check_choice
from iota2_spot_s2.io import atomic_output
from iota2_spot_s2.otb import run_app

METHODS = ("majorityvoting", "dempstershafer")


def otb_fusion_of_classifications(
    class_maps: Sequence[str | os.PathLike[str]],
    out: str | os.PathLike[str],
    *,
    method: str = "majorityvoting",
    confusions: Sequence[str | os.PathLike[str] | np.ndarray] | None = None,
    codes: Sequence[int] | None = None,
    mob: str = "precision",
    nodata_label: int = 0,
    undecided_label: int = 0,
    pixel_type: str = "uint8",
) -> Path:
    """Run ``otbcli_FusionOfClassifications`` (or the Python API) and write ``out`` atomically.

    Args:
        class_maps: Input class maps, same grid.
        out: Output class map.
        method: ``majorityvoting`` or ``dempstershafer``.
        confusions: For ``dempstershafer``, one OTB confusion CSV per map, or ``(K, K)`` arrays
            on ``codes`` (written to temporary CSVs in OTB's layout).
        codes: Class codes of array confusion matrices.
        mob: ``precision``, ``recall``, ``accuracy`` or ``kappa``.
        nodata_label: ``-nodatalabel``.
        undecided_label: ``-undecidedlabel``.
        pixel_type: Output pixel type.

    Raises:
        iota2_spot_s2.otb.OTBUnavailable: If OTB is not installed.
        iota2_spot_s2.otb.OTBError: If the application fails.

    """
    check_choice(method, METHODS, "OTB fusion method")
    check_choice(mob, MOBS, "mass of belief measure")
    with tempfile.TemporaryDirectory(prefix="otb_fusion_") as tmp_dir, atomic_output(out) as tmp:
        params: dict[str, object] = {"il": [os.fspath(p) for p in class_maps], "method": method}
        if method == "dempstershafer":
            csvs = _confusion_files(confusions, codes, len(class_maps), Path(tmp_dir))
            params["method.dempstershafer.cmfl"] = csvs
            params["method.dempstershafer.mob"] = mob
        params.update(
            nodatalabel=int(nodata_label), undecidedlabel=int(undecided_label),
            out=(os.fspath(tmp), pixel_type),
        )  # fmt: skip
        run_app("FusionOfClassifications", **params)
    return Path(out)


def _confusion_files(
    confusions: Sequence[str | os.PathLike[str] | np.ndarray] | None,
    codes: Sequence[int] | None,
    n_maps: int,
    tmp_dir: Path,
) -> list[str]:
    if confusions is None or len(confusions) != n_maps:
        raise ValueError("dempstershafer needs one confusion matrix per class map")
    files = []
    for i, item in enumerate(confusions):
        if isinstance(item, str | os.PathLike):
            files.append(os.fspath(item))
            continue
        if codes is None:
            raise ValueError("codes are needed to write array confusion matrices")
        files.append(write_otb_confusion_csv(np.asarray(item), codes, tmp_dir / f"cm_{i}.csv"))
    return files

"""Evaluation reports: JSON round trip, OTB-layout CSV, PNG heatmap."""

from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np
import pytest
from matplotlib import image as mpimg

from iota2_spot_s2.errors import InputError
from iota2_spot_s2.evaluation import (
    class_names,
    read_otb_confusion_csv,
    read_report,
    scores,
    write_report,
)
from iota2_spot_s2.evaluation.plot import row_percentages

CODES = [10, 20, 30, 40]
NAMES = ["urban", "forest", "crops", "water"]
TITLE = "simulated data, patch CNN map, test split"


@pytest.fixture
def cm():
    return np.array([[50, 3, 2, 0], [4, 80, 6, 0], [1, 9, 40, 0], [0, 0, 0, 0]], dtype=np.int64)


def test_write_report_files(cm, tmp_path):
    s = scores(cm, CODES)
    paths = write_report(
        s,
        cm,
        CODES,
        tmp_path / "eval",
        title=TITLE,
        names=NAMES,
        prefix="fcn",
        extra={"unmapped_produced": [1, 0, 0, 0]},
    )
    assert set(paths) == {"json", "csv", "png"}
    assert paths["json"].name == "fcn_scores.json"
    assert all(p.is_file() for p in paths.values())
    assert not list((tmp_path / "eval").glob(".*partial*"))  # atomic writes left nothing

    payload = json.loads(paths["json"].read_text())
    assert payload["title"] == TITLE
    assert payload["names"] == NAMES
    assert payload["unmapped_produced"] == [1, 0, 0, 0]
    got_scores, got_cm, _ = read_report(paths["json"])
    assert got_scores == s
    np.testing.assert_array_equal(got_cm, cm)
    assert got_scores.overall_accuracy == pytest.approx(170 / 195)

    ref_codes, prod_codes, matrix = read_otb_confusion_csv(paths["csv"])
    assert ref_codes == prod_codes == CODES
    np.testing.assert_array_equal(matrix, cm)
    lines = paths["csv"].read_text().splitlines()
    assert lines[0] == "#Reference labels (rows):10,20,30,40"
    assert lines[1] == "#Produced labels (columns):10,20,30,40"
    assert lines[2] == "50,3,2,0"

    img = mpimg.imread(paths["png"])
    assert img.ndim == 3 and img.shape[0] > 100 and img.shape[1] > 100
    assert img.std() > 0  # not a blank canvas


def test_report_requires_title_and_matching_codes(cm, tmp_path):
    s = scores(cm, CODES)
    with pytest.raises(ValueError, match="title"):
        write_report(s, cm, CODES, tmp_path, title="  ")
    with pytest.raises(ValueError, match="differ"):
        write_report(s, cm, [10, 20, 30, 50], tmp_path, title=TITLE)


def test_class_names_from_nomenclature_like_object():
    @dataclass
    class Nom:
        codes: list[int]
        names: list[str]

    nom = Nom([40, 10, 20, 30], ["water", "urban", "forest", "crops"])
    assert class_names(CODES, nom) == NAMES
    assert class_names(CODES, {10: "urban"}) == ["urban", "20", "30", "40"]
    assert class_names(CODES) == ["10", "20", "30", "40"]
    with pytest.raises(ValueError):
        class_names(CODES, ["a", "b"])


def test_row_percentages():
    pct = row_percentages(np.array([[1, 3], [0, 0]]))
    np.testing.assert_allclose(pct, [[25.0, 75.0], [0.0, 0.0]])


@pytest.mark.parametrize(
    "text, problem",
    [
        ("1,2\n3,4\n", "starting with"),
        ("#Reference labels (rows):1,2\n#Produced labels (columns):1,2\n1,2\n", "rows"),
        ("#Reference labels (rows):1\n#Produced labels (columns):1,2\n1\n", "values"),
        ("#Reference labels (rows):1\n#Produced labels (columns):x\n1\n", "non-integer"),
    ],
)
def test_read_otb_csv_rejects_malformed(tmp_path, text, problem):
    path = tmp_path / "bad.csv"
    path.write_text(text)
    with pytest.raises(InputError, match=problem):
        read_otb_confusion_csv(path)


def test_read_otb_csv_missing_file(tmp_path):
    with pytest.raises(InputError, match="cannot be read"):
        read_otb_confusion_csv(tmp_path / "nope.csv")

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from iota2_spot_s2.errors import InputError
from iota2_spot_s2.reference import read_mapping_table, source_key


def test_reads_int_and_text_sources_ignoring_comments_and_extra_columns(tmp_path: Path) -> None:
    path = tmp_path / "map.csv"
    path.write_text(
        "# a comment\n\nlabel,source,target\nblé,1,6\nprairie, CS2.2.1 ,13\nagain,1,6\nnone,X,0\n",
        encoding="utf-8",
    )
    assert read_mapping_table(path) == {"1": 6, "CS2.2.1": 13, "X": 0}


@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        ("src,dst\n1,2\n", "line 1: header must name 'source' and 'target'"),
        ("source,target\n1,6\n1,7\n", "line 3: source '1' mapped to 7, but to 6 on line 2"),
        ("source,target\n1,six\n", "line 2: target 'six' is not an integer"),
        ("source,target\n1,-1\n", "line 2: target -1 not in"),
        ("# c\nsource,target\n,3\n", "line 3: empty source"),
        ("source,target,note\n1\n", "line 2: expected at least 3 columns"),
        ("# only comments\n", "empty mapping table"),
    ],
)
def test_bad_tables(tmp_path: Path, content: str, fragment: str) -> None:
    path = tmp_path / "map.csv"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(InputError) as info:
        read_mapping_table(path)
    assert info.value.path == str(path)
    assert fragment in info.value.problem


def test_missing_table(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="cannot be read"):
        read_mapping_table(tmp_path / "nope.csv")


def test_source_key_normalises_values() -> None:
    assert source_key(3) == "3"
    assert source_key(np.int64(3)) == "3"
    assert source_key(3.0) == "3"
    assert source_key(" CS1.1 ") == "CS1.1"
    assert source_key(None) is None
    assert source_key(float("nan")) is None
    assert source_key(2.5) == "2.5"

"""Property tests of the readers of user files: any content gives a result or one InputError.

Readers: the cfg (``read_cfg`` / ``load_config``), the nomenclature files (iota2 ``name:code``,
``colorFile.txt``, hierarchy CSV) and the mapping tables. Valid files written by our writers
read back equal. Examples are derandomized (same inputs on every run) and not stored.
"""

from __future__ import annotations

import contextlib
import csv
import io
import tempfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.configuration import set_hypothesis_home_dir

from iota2_spot_s2.errors import InputError
from iota2_spot_s2.nomenclature import (
    MAX_CODE,
    Nomenclature,
    read_color_file,
    read_hierarchy_csv,
    read_nomenclature,
    write_color_file,
    write_hierarchy_csv,
    write_nomenclature,
)
from iota2_spot_s2.reference import read_mapping_table
from iota2_spot_s2.settings import PLUGIN_SECTION, RunConfig, format_cfg, load_config, read_cfg

set_hypothesis_home_dir(Path(tempfile.gettempdir()) / "iota2_spot_s2_hypothesis")  # not the repo
QUICK = settings(
    max_examples=200,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("properties")


def _file(folder: Path, name: str, content: bytes | str) -> Path:
    path = folder / name
    if isinstance(content, str):
        path.write_text(content, encoding="utf-8")
    else:
        path.write_bytes(content)
    return path


# -- the cfg reader ---------------------------------------------------------------------------

CFG_LIKE = st.text(alphabet=st.sampled_from(list("chain:{}[]'\"$`@,=.-+*/ \n\t\\#abc01_é\x00")))


@QUICK
@given(content=st.binary(max_size=400) | st.text(max_size=300) | CFG_LIKE)
def test_any_cfg_file_is_a_config_or_an_input_error(folder: Path, content: Any) -> None:
    path = _file(folder, "any.cfg", content)
    try:
        assert isinstance(read_cfg(path), dict)
        assert isinstance(load_config(path, check_paths=False), RunConfig)
    except InputError as err:
        assert err.path == str(path) and "\n" not in err.problem


VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=3)
    | st.dictionaries(st.text(min_size=1, max_size=6), inner, max_size=2),
    max_leaves=4,
)  # fmt: skip
KEYS = st.sampled_from([
    "chain.output_path", "chain.list_tile", "chain.spatialResolution", "chain.spatial_resolution",
    "chain.ground_truth", "chain.data_field", "chain.proj", "chain.s2_path", "arg_train.runs",
    "argTrain.runs", "chain", "spot_s2_fusion", "spot_s2_fusion.spot_images",
    "spot_s2_fusion.spot_images.T1", "spot_s2_fusion.models", "spot_s2_fusion.strategies",
    "spot_s2_fusion.tile_size", "spot_s2_fusion.seed", "spot_s2_fusion.iota2_model",
    "spot_s2_fusion.model_steps", "spot_s2_fusion.reference_layer", "spot_s2_fusion.checkpoint",
    "spot_s2_fusion.training", "spot_s2_fusion.training.epochs", "spot_s2_fusion.training.lr",
    "spot_s2_fusion.training.crop", "spot_s2_fusion.training.val_max_pixels",
    "spot_s2_fusion.spot_features", "spot_s2_fusion.unknown_key",
])  # fmt: skip


def _valid(folder: Path) -> dict[str, Any]:
    (folder / "spot.tif").write_text("x")
    (folder / "s2").mkdir(exist_ok=True)
    return {
        "chain": {"output_path": "out", "list_tile": "T1", "s2_path": "s2"},
        PLUGIN_SECTION: {"spot_images": {"T1": "spot.tif"}, "training": {"epochs": 2}},
    }


def _set(sections: dict[str, Any], key: str, value: Any) -> None:
    *path, last = key.split(".")
    node: Any = sections
    for part in path:
        if not isinstance(node.get(part), dict):
            node[part] = {}
        node = node[part]
    node[last] = value


@QUICK
@given(edits=st.lists(st.tuples(KEYS, VALUES), min_size=1, max_size=3))
def test_any_value_of_any_field_is_accepted_or_one_input_error(
    folder: Path, edits: list[tuple[str, Any]]
) -> None:
    sections = _valid(folder)
    for key, value in edits:
        _set(sections, key, value)
    if not all(isinstance(body, dict) for body in sections.values()):
        return  # format_cfg writes sections as mappings only
    path = _file(folder, "edited.cfg", format_cfg(sections))
    try:
        run = load_config(path)
    except InputError as err:
        assert err.path == str(path) and "\n" not in err.problem
    else:
        assert run.chain.list_tile and run.plugin.training.epochs >= 1


#: (cfg key, smallest allowed, integer?) of the numeric fields with a lower bound.
BOUNDS = [
    ("tile_size", 64, True), ("seed", 0, True), ("tempcnn_epochs", 1, True),
    ("training.epochs", 1, True), ("training.batch_size", 1, True),
    ("training.patience", 1, True), ("training.rounds", 1, True), ("training.max_steps", 1, True),
    ("training.val_max_pixels", 0, True), ("training.warmup", 0, False),
]  # fmt: skip


@QUICK
@given(bound=st.sampled_from(BOUNDS), value=st.integers(-1000, 1000) | st.floats(-1e3, 1e3))
def test_a_number_is_kept_if_allowed_and_refused_by_name_otherwise(
    folder: Path, bound: tuple[str, float, bool], value: float
) -> None:
    key, low, integer = bound
    sections = _valid(folder)
    _set(sections, f"{PLUGIN_SECTION}.{key}", value)
    path = _file(folder, "bound.cfg", format_cfg(sections))
    allowed = value >= low and (isinstance(value, int) or not integer)
    allowed = allowed and not (key == "training.warmup" and value >= 1)
    if not allowed:
        with pytest.raises(InputError, match=f"{PLUGIN_SECTION}.{key} must be"):
            load_config(path)
        return
    run = load_config(path)
    kept = getattr(run.plugin, key) if "." not in key else getattr(run.plugin.training, key[9:])
    assert kept == (value or None if key == "training.val_max_pixels" else value)


# -- the nomenclature readers -----------------------------------------------------------------

CSV_TEXT = st.text(st.sampled_from(list('0123456789 :,#-"\n\r\tabé\x00\x1c\u2028')), max_size=200)
CODES = st.sampled_from(["1", "7", " 3 ", '"5"', "0", "a"])
#: CSV rows of typical and tricky fields (quotes spanning lines, 0, out-of-range codes, blanks).
FIELDS = st.sampled_from(["1", "7", "a", "#", "", " 3 ", "0", "70000", '"', '"x\ny"', '"5"'])
CSV_ROWS = st.lists(st.lists(FIELDS, min_size=1, max_size=7).map(",".join), max_size=6).map(
    "\n".join
) | st.lists(st.tuples(CODES, FIELDS).map(",".join), max_size=5).map("\n".join)
TEXTISH = st.binary(max_size=300) | st.text(max_size=200) | CSV_TEXT | CSV_ROWS
#: Lines of each format built from the same tricky fields.
LINES = {
    "n.txt": st.lists(st.tuples(FIELDS, FIELDS).map(":".join), max_size=5).map("\n".join),
    "colors.txt": st.lists(st.lists(FIELDS, min_size=3, max_size=5).map(" ".join), max_size=5)
    .map("\n".join),
    "n.csv": st.builds(
        str.__add__,
        st.sampled_from(["code,name\n", "code,name,red,green,blue,level1_code,level1_name\n"]),
        CSV_ROWS,
    ),
}  # fmt: skip
READERS = {"n.txt": read_nomenclature, "colors.txt": read_color_file, "n.csv": read_hierarchy_csv}


@pytest.mark.parametrize("name", sorted(READERS))
@QUICK
@given(data=st.data())
def test_any_nomenclature_file_is_a_result_or_an_input_error(
    folder: Path, name: str, data: st.DataObject
) -> None:
    structured = data.draw(st.integers(0, 3), label="structured") > 0
    path = _file(folder, name, data.draw(LINES[name] if structured else TEXTISH, label="content"))
    try:
        result = READERS[name](path)
    except InputError as err:
        assert err.path == str(path)
    else:
        assert isinstance(result, dict | Nomenclature)
    if name == "n.csv":
        with contextlib.suppress(InputError):
            assert isinstance(read_nomenclature(path), Nomenclature)


#: Names the formats can hold: one line, no surrounding blanks, not a comment.
ONE_LINE = st.characters(blacklist_categories=("Cc", "Cs", "Zl", "Zp"))
NAMES = (
    st.text(ONE_LINE, min_size=1, max_size=12)
    .map(str.strip)
    .filter(lambda s: s and not s.startswith("#"))
)


@st.composite
def nomenclatures(draw: st.DrawFn) -> Nomenclature:
    codes = draw(st.lists(st.integers(1, MAX_CODE), min_size=1, max_size=6, unique=True))
    rgb = st.tuples(*[st.integers(0, 255)] * 3)
    names = {c: draw(NAMES) for c in codes}
    colors = {c: draw(rgb) for c in codes}
    levels = []
    for _ in range(draw(st.integers(0, 2))):
        parents = draw(st.lists(st.integers(1, 50), min_size=1, max_size=3, unique=True))
        parent_names = {p: draw(NAMES) for p in parents}
        chosen = {c: draw(st.sampled_from(parents)) for c in codes}
        levels.append({c: (p, parent_names[p]) for c, p in chosen.items()})
    return Nomenclature.from_classes(names, colors, levels)


@QUICK
@given(nom=nomenclatures())
def test_written_nomenclatures_read_back_equal(folder: Path, nom: Nomenclature) -> None:
    txt = write_nomenclature(nom, folder / "nomenclature.txt")
    colors = write_color_file(nom, folder / "colorFile.txt")
    back = read_nomenclature(txt, colors)
    assert (back.codes, back.names, back.colors) == (nom.codes, nom.names, nom.colors)
    assert read_color_file(colors) == dict(zip(nom.codes, nom.colors, strict=True))
    assert read_hierarchy_csv(write_hierarchy_csv(nom, folder / "hierarchy.csv")) == nom


# -- the mapping-table reader -----------------------------------------------------------------


@QUICK
@given(content=TEXTISH | st.builds("source,target\n".__add__, CSV_TEXT | CSV_ROWS))
def test_any_mapping_table_is_a_result_or_an_input_error(folder: Path, content: Any) -> None:
    path = _file(folder, "mapping.csv", content)
    try:
        table = read_mapping_table(path)
    except InputError as err:
        assert err.path == str(path)
    else:
        assert all(isinstance(k, str) and 0 <= v <= MAX_CODE for k, v in table.items())


@QUICK
@given(table=st.dictionaries(NAMES, st.integers(0, MAX_CODE), min_size=1, max_size=8))
def test_written_mapping_tables_read_back_equal(folder: Path, table: dict[str, int]) -> None:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["source", "label", "target"])
    writer.writerows([source, "x, y", target] for source, target in table.items())
    path = _file(folder, "written.csv", buffer.getvalue())
    assert read_mapping_table(path) == table


@pytest.mark.parametrize(
    ("reader", "name", "content", "problem"),
    [
        (read_hierarchy_csv, "h.csv", 'code,name\n1,"x\ny"\n', "line 3: expected 2 columns"),
        (read_mapping_table, "m.csv", 'SOURCE,TARGET\r0,"\r0', "line 2: target '' is not"),
        (read_mapping_table, "m.csv", 'source,target\n"a\nb",1\n', "line 2: expected at least"),
    ],
)
def test_a_quoted_field_across_lines_is_an_input_error(
    folder: Path, reader: Any, name: str, content: str, problem: str
) -> None:
    """Found by the properties above: csv rows no longer matched lines (a ValueError)."""
    path = _file(folder, name, content)
    with pytest.raises(InputError, match=problem):
        reader(path)

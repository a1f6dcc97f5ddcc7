"""Which iota2 generation a cfg is written for: 2020 (camelCase) or current (snake_case).

iota2 renamed its cfg keys between its 2020 releases and today's (2022 and later). The two
generations do not read each other's keys: iota2 2020's ``checkConfigParameters`` stops on a
missing ``chain.outputPath`` when the cfg says ``output_path``, and a 2020 cfg gives its seeds
in ``chain.runs`` where today's gives ``arg_train.runs``. :data:`GENERATION_PAIRS` lists the
same setting under both names; :func:`detect_generation` says which names a cfg uses, and
:func:`to_generation` renames a cfg's keys into one generation.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

#: The 2020 generation (iota2 <= 2020, ``Common/ServiceConfigFile.py``, camelCase keys).
GEN_2020 = "2020"
#: Today's generation (iota2 2022 and later, snake_case keys).
GEN_CURRENT = "current"
GENERATIONS = (GEN_2020, GEN_CURRENT)

#: ``(2020 key, current key)``: one setting, named by each generation (``section.key``, or a
#: whole section).
GENERATION_PAIRS: tuple[tuple[str, str], ...] = (
    ("chain.outputPath", "chain.output_path"),
    ("chain.remove_outputPath", "chain.remove_output_path"),
    ("chain.listTile", "chain.list_tile"),
    ("chain.S2Path", "chain.s2_path"),
    ("chain.S1Path", "chain.s1_path"),
    ("chain.L8Path", "chain.l8_path"),
    ("chain.userFeatPath", "chain.user_feat_path"),
    ("chain.groundTruth", "chain.ground_truth"),
    ("chain.dataField", "chain.data_field"),
    ("chain.nomenclaturePath", "chain.nomenclature_path"),
    ("chain.colorTable", "chain.color_table"),
    ("chain.spatialResolution", "chain.spatial_resolution"),
    ("chain.firstStep", "chain.first_step"),
    ("chain.lastStep", "chain.last_step"),
    ("chain.regionPath", "chain.region_path"),
    ("chain.regionField", "chain.region_field"),
    ("chain.runs", "arg_train.runs"),
    ("GlobChain.proj", "chain.proj"),
    ("argTrain", "arg_train"),
    ("argClassification", "arg_classification"),
)
#: Sections only one generation has (2020's ``GlobChain``; today's chunking and builders).
ONLY_2020 = ("GlobChain", "iota2FeatureExtraction", "dimRed")
ONLY_CURRENT = ("python_data_managing", "builders")
#: Keys inside the training section, renamed with it.
TRAIN_PAIRS = (("sampleSelection", "sample_selection"), ("classifMode", "classif_mode"))


@dataclass(frozen=True)
class Generation:
    """The generation of a cfg and the keys that told it."""

    name: str
    keys_2020: tuple[str, ...]
    keys_current: tuple[str, ...]

    @property
    def mixed(self) -> bool:
        """Keys of both generations: neither iota2 reads this cfg whole."""
        return bool(self.keys_2020 and self.keys_current)

    def describe(self) -> str:
        """One line: the generation and the keys of each generation found."""
        if self.mixed:
            return (
                "mixed iota2 generations: 2020 (camelCase) keys "
                f"{', '.join(self.keys_2020)}; current (snake_case) keys "
                f"{', '.join(self.keys_current)}: write every key in one generation"
            )
        if self.name == GEN_2020:
            return f"iota2 2020 cfg (camelCase keys: {', '.join(self.keys_2020)})"
        if self.name == GEN_CURRENT:
            return f"current iota2 cfg (snake_case keys: {', '.join(self.keys_current)})"
        return "iota2 generation undetermined (no key specific to 2020 or current iota2)"


def _has(raw: dict[str, Any], key: str) -> bool:
    section, _, name = key.partition(".")
    if not name:
        return section in raw
    body = raw.get(section)
    return isinstance(body, dict) and name in body


def detect_generation(raw: dict[str, Any]) -> Generation:
    """The generation whose keys ``raw`` (a parsed cfg) uses (``mixed`` when both)."""
    old = [k for k, _ in GENERATION_PAIRS if _has(raw, k)] + [s for s in ONLY_2020 if s in raw]
    new = [k for _, k in GENERATION_PAIRS if _has(raw, k)] + [s for s in ONLY_CURRENT if s in raw]
    if old and new:
        name = "mixed"
    elif old or new:
        name = GEN_2020 if old else GEN_CURRENT
    else:
        name = "undetermined"
    return Generation(name, tuple(old), tuple(new))


def to_generation(raw: dict[str, Any], generation: str) -> dict[str, Any]:
    """A copy of ``raw`` with every key of :data:`GENERATION_PAIRS` named by ``generation``.

    Towards 2020 it also writes what iota2 2020 requires and today's iota2 has no key for:
    ``argTrain.options`` (OTB options text, from ``otb_classifier_options``),
    ``argClassification.classifMode`` (``'separate'``), a ``spatialResolution`` list; today's
    ``python_data_managing`` chunking goes to 2020's ``external_features`` block.

    Raises:
        ValueError: If ``generation`` is not one of :data:`GENERATIONS`.

    """
    if generation not in GENERATIONS:
        raise ValueError(f"generation must be one of {GENERATIONS}, got {generation!r}")
    out = copy.deepcopy(raw)
    to_2020 = generation == GEN_2020
    for old, new in GENERATION_PAIRS:
        source, target = (new, old) if to_2020 else (old, new)
        _move(out, source, target)
    train = "argTrain" if to_2020 else "arg_train"
    for old, new in TRAIN_PAIRS:
        for section in (train, "argClassification" if to_2020 else "arg_classification"):
            body = out.get(section)
            if isinstance(body, dict):
                src, dst = (new, old) if to_2020 else (old, new)
                if src in body:
                    body.setdefault(dst, body.pop(src))
    if to_2020:
        _complete_2020(out)
    return out


def _move(raw: dict[str, Any], source: str, target: str) -> None:
    if not _has(raw, source):
        return
    src_section, _, src_key = source.partition(".")
    dst_section, _, dst_key = target.partition(".")
    if not src_key:  # a whole section
        body = raw.pop(src_section)
        existing = raw.setdefault(dst_section, {})
        for key, value in body.items():
            existing.setdefault(key, value)
        return
    value = raw[src_section].pop(src_key)
    if not raw[src_section]:
        del raw[src_section]
    raw.setdefault(dst_section, {}).setdefault(dst_key, value)


def _complete_2020(raw: dict[str, Any]) -> None:
    train = raw.setdefault("argTrain", {})
    train.setdefault("classifier", "rf")
    options = train.pop("otb_classifier_options", None)
    if "options" not in train:
        pairs = options.items() if isinstance(options, dict) else ()
        train["options"] = " " + " ".join(f"-{k} {v}" for k, v in pairs) + " "
    raw.setdefault("argClassification", {}).setdefault("classifMode", "separate")
    raw["argClassification"].pop("generate_final_probability_map", None)  # not a 2020 key
    chain = raw.setdefault("chain", {})
    resolution = chain.get("spatialResolution")
    if isinstance(resolution, int | float) and not isinstance(resolution, bool):
        chain["spatialResolution"] = [resolution, resolution]
    chunks = raw.pop("python_data_managing", None)
    if isinstance(chunks, dict) and "external_features" in raw:
        for key in ("chunk_size_mode", "number_of_chunks", "chunk_size_x", "chunk_size_y"):
            if key in chunks:
                raw["external_features"].setdefault(key, chunks[key])
    raw.pop("builders", None)

"""The OTB adapter: argument building, the CLI backend against real otbcli_* apps, errors."""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import rasterio
from affine import Affine

from iota2_spot_s2 import otb


@pytest.fixture
def need_otb_cli():
    """Fails under CI=true when OTB's launchers are missing, skips otherwise."""
    if not all(shutil.which(f"otbcli_{app}") for app in ("BandMath", "ComputeConfusionMatrix")):
        message = "otbcli_BandMath / otbcli_ComputeConfusionMatrix not on PATH (Debian otb-bin)"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message)
        pytest.skip(message)


@pytest.fixture
def small_tif(tmp_path):
    path = tmp_path / "in.tif"
    data = np.arange(64, dtype=np.uint8).reshape(8, 8)
    profile = {
        "driver": "GTiff",
        "width": 8,
        "height": 8,
        "count": 1,
        "dtype": "uint8",
        "crs": "EPSG:2154",
        "transform": Affine(10.0, 0.0, 650000.0, 0.0, -10.0, 6860000.0),
    }
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(data, 1)
    return path, data


def test_otb_key_conversion():
    assert otb.otb_key("ref__raster__in") == "ref.raster.in"
    assert otb.otb_key("in_") == "in"
    assert otb.otb_key("nodatalabel") == "nodatalabel"


def test_cli_arguments():
    args = otb.cli_arguments(
        "X",
        {
            "il": [Path("a.tif"), "b.tif"],
            "out": ("o.tif", "uint8"),
            "progress": False,
            "ref__raster__nodata": 0,
            "ram": None,
            "in_": Path("x.tif"),
            "ratio": 0.5,
        },
    )
    assert args == [
        "-il",
        "a.tif",
        "b.tif",
        "-out",
        "o.tif",
        "uint8",
        "-progress",
        "false",
        "-ref.raster.nodata",
        "0",
        "-in",
        "x.tif",
        "-ratio",
        "0.5",
    ]


def test_run_app_cli_success(small_tif, tmp_path, need_otb_cli):
    src, data = small_tif
    out = tmp_path / "twice.tif"
    otb.run_app("BandMath", il=[src], out=(out, "uint16"), exp="im1b1*2", progress=False)
    with rasterio.open(out) as ds:
        assert ds.dtypes[0] == "uint16"
        np.testing.assert_array_equal(ds.read(1), data.astype(np.uint16) * 2)


def test_run_app_bad_parameter_is_clear(small_tif, tmp_path, need_otb_cli):
    src, _ = small_tif
    with pytest.raises(otb.OTBError) as info:  # OTB's own message
        otb.run_app("BandMath", il=[src], out=tmp_path / "o.tif", exp="im1b1", bogus=3)
    assert info.value.app == "BandMath"
    assert "-bogus does not exist" in str(info.value)
    # otbcli would silently ignore "-bogus_key 3": we refuse it before running OTB
    with pytest.raises(otb.OTBError, match="invalid parameter key.*bogus_key"):
        otb.run_app("BandMath", il=[src], out=tmp_path / "o.tif", exp="im1b1", bogus_key=3)
    assert not (tmp_path / "o.tif").exists()


def test_run_app_reports_fatal_message(tmp_path, need_otb_cli):
    missing = tmp_path / "missing.tif"
    with pytest.raises(otb.OTBError, match="missing.tif"):
        otb.run_app("BandMath", il=[missing], out=tmp_path / "o.tif", exp="im1b1")
    assert not (tmp_path / "o.tif").exists()


def test_ram_hint_reaches_otb(small_tif, tmp_path, need_otb_cli, caplog, monkeypatch):
    monkeypatch.delenv("OTB_MAX_RAM_HINT", raising=False)
    hint = otb.ram_hint_mb()
    assert otb.RAM_HINT_MIN_MB <= hint <= otb.RAM_HINT_MAX_MB
    src, _ = small_tif
    with caplog.at_level(logging.DEBUG, logger="iota2_spot_s2.otb"):
        otb.run_app("BandMath", il=[src], out=tmp_path / "o.tif", exp="im1b1")
    assert f"Default RAM limit for OTB is {hint} MB" in caplog.text
    monkeypatch.setenv("OTB_MAX_RAM_HINT", "300")
    assert otb.ram_hint_mb() == 300


def test_unavailable(monkeypatch):
    monkeypatch.setattr(otb, "_python_api", lambda: None)
    monkeypatch.setenv("PATH", "/nonexistent")
    assert not otb.otb_available("ComputeConfusionMatrix")
    with pytest.raises(otb.OTBUnavailable, match="otbcli_ComputeConfusionMatrix"):
        otb.run_app("ComputeConfusionMatrix", in_="x.tif")


class _FakeApp:
    """Stands in for an otbApplication.Application: records the typed setter calls."""

    def __init__(self, fail: bool = False):
        self.calls: list[tuple] = []
        self.fail = fail

    def GetParametersKeys(self):  # noqa: N802 - OTB's API name
        return ["il", "out", "exp", "ram", "progress", "ratio"]

    def GetParameterType(self, key):  # noqa: N802
        return "OUT_IMAGE" if key == "out" else "OTHER"

    def __getattr__(self, name):
        if name.startswith("SetParameter"):
            return lambda *args: self.calls.append((name, *args))
        raise AttributeError(name)

    def ExecuteAndWriteOutput(self):  # noqa: N802
        if self.fail:
            raise RuntimeError("Exception thrown in otbApplication: cannot open image")
        self.calls.append(("Execute",))


def _fake_api(app):
    return SimpleNamespace(
        Registry=SimpleNamespace(
            CreateApplication=lambda name: app if name == "BandMath" else None,
            GetAvailableApplications=lambda: ["BandMath"],
        ),
        ParameterType_OutputImage="OUT_IMAGE",
        ImagePixelType_uint8=1,
    )


def test_python_backend_preferred_and_typed(monkeypatch):
    app = _FakeApp()
    monkeypatch.setattr(otb, "_python_api", lambda: _fake_api(app))
    otb.run_app(
        "BandMath", il=["a.tif"], out=("o.tif", "uint8"), exp="im1b1", progress=True, ratio=0.5
    )
    assert ("SetParameterInt", "ram", otb.ram_hint_mb()) in app.calls
    assert ("SetParameterStringList", "il", ["a.tif"]) in app.calls
    assert ("SetParameterString", "out", "o.tif") in app.calls
    assert ("SetParameterOutputImagePixelType", "out", 1) in app.calls
    assert ("SetParameterString", "progress", "true") in app.calls
    assert ("SetParameterFloat", "ratio", 0.5) in app.calls
    assert app.calls[-1] == ("Execute",)
    assert otb.otb_available("BandMath")


def test_python_backend_errors(monkeypatch):
    monkeypatch.setattr(otb, "_python_api", lambda: _fake_api(_FakeApp(fail=True)))
    with pytest.raises(otb.OTBError, match="cannot open image"):
        otb.run_app("BandMath", il=["a.tif"], out="o.tif", exp="im1b1")
    with pytest.raises(otb.OTBError, match="bogus do not exist"):
        otb.run_app("BandMath", bogus=1)
    with pytest.raises(otb.OTBError, match="no such application"):
        otb.run_app("NoSuchApp")


def test_a_crashed_launcher_is_retried_once_on_one_thread(tmp_path) -> None:
    """Debian's OTB crashed rarely (SIGSEGV); the adapter retries once with one ITK thread."""
    from iota2_spot_s2.otb import _run_cli

    marker, seen = tmp_path / "crashed_once", tmp_path / "threads"
    launcher = tmp_path / "otbcli_Fake"
    launcher.write_text(
        "#!/bin/sh\n"
        f'if [ ! -e "{marker}" ]; then touch "{marker}"; kill -SEGV $$; fi\n'
        f'echo "$ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS" > "{seen}"\n'
    )
    launcher.chmod(0o755)
    _run_cli(str(launcher), "Fake", {})
    assert marker.exists() and seen.read_text().strip() == "1"

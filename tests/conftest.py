"""Shared fixtures: where the real data lives, and a guard that fails in CI if it is missing."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

SHARED_DATA = Path(
    os.environ.get(
        "IOTA2_SPOT_S2_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"
    )
)


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The folder of real EO fixtures (``../shared/data``).

    Outside CI a missing folder skips the test; under ``CI=true`` it fails, so that CI can never
    go green without the real-data tests having run.
    """
    if not SHARED_DATA.is_dir():
        message = f"real test data not found at {SHARED_DATA}"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message)
        pytest.skip(message)
    return SHARED_DATA


@pytest.fixture
def need_otb() -> None:
    """Fails under CI=true when OTB's FusionOfClassifications is missing, skips otherwise."""
    from iota2_spot_s2 import otb

    if not otb.otb_available("FusionOfClassifications"):
        message = "otbcli_FusionOfClassifications not available (Debian otb-bin)"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message)
        pytest.skip(message)


@pytest.fixture(scope="module")
def two_workers():
    """A dask LocalCluster of two one-thread worker processes, shared by a test module."""
    distributed = pytest.importorskip("distributed")
    from iota2_spot_s2.inference.distributed import kept_environment

    with (
        kept_environment(),
        distributed.LocalCluster(
            n_workers=2,
            threads_per_worker=1,
            processes=True,
            dashboard_address=":0",
            silence_logs=40,
        ) as local,
    ):  # the nannies' OMP_NUM_THREADS=1 must not reach later tests' subprocesses
        yield local

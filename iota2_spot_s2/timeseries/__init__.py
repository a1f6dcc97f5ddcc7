"""The Sentinel-2 side: gap-filling, spectro-temporal features, pixel classifiers, maps.

- :func:`gapfill` / :func:`gapfill_series`: linear temporal gap-filling onto a regular date grid
  (default every 10 days from the first to the last acquisition, like iota2), honouring the
  validity mask; :func:`regular_dates`.
- :func:`open_band_stack`: a one-band-per-date raster (+ cloud-mask stack) as a series.
- :func:`compute_features` / :func:`feature_names`: bands + NDVI, NDWI, brightness per date with
  iota2's feature labels (``Sentinel2_B2_20210101``, ``Sentinel2_NDVI_20210101``...).
- :func:`train_s2_classifier` (``kind="rf"`` or ``"tempcnn"``) -> :class:`S2Classifier`;
  :func:`s2_probabilities` / :func:`predict_proba_map` -> ``(K, H, W)`` probabilities on the
  10 m grid in class-code order; :func:`write_s2_maps` writes probability (uint16 0-1000),
  class and confidence COGs tagged with the gap-filling dates and method;
  :func:`save_classifier` / :func:`load_classifier`.

Example::

    series = open_s2_timeseries(scene.sensor_data)
    clf = train_s2_classifier(series, labels, split, kind="rf", class_codes=codes, seed=0)
    proba = s2_probabilities(clf, series)          # (K, H, W), NaN where no valid sample
    write_s2_maps(clf, series, "out/", nomenclature=nom)
"""

from iota2_spot_s2.timeseries.classifiers import (
    KINDS,
    RF_DEFAULTS,
    S2Classifier,
    predict_proba_map,
    s2_probabilities,
    train_s2_classifier,
)
from iota2_spot_s2.timeseries.features import (
    INDICES,
    FeatureCube,
    available_indices,
    compute_features,
    feature_names,
)
from iota2_spot_s2.timeseries.gapfill import (
    DEFAULT_STEP_DAYS,
    GapFilled,
    format_dates,
    gapfill,
    gapfill_series,
    regular_dates,
)
from iota2_spot_s2.timeseries.outputs import provenance_tags, write_proba_maps, write_s2_maps
from iota2_spot_s2.timeseries.persist import load_classifier, save_classifier
from iota2_spot_s2.timeseries.samples import FeatureSpec, pixel_features, sample_pixels
from iota2_spot_s2.timeseries.stack import open_band_stack
from iota2_spot_s2.timeseries.tempcnn_fit import FitOptions

__all__ = [
    "DEFAULT_STEP_DAYS",
    "INDICES",
    "KINDS",
    "RF_DEFAULTS",
    "FeatureCube",
    "FeatureSpec",
    "FitOptions",
    "GapFilled",
    "S2Classifier",
    "available_indices",
    "compute_features",
    "feature_names",
    "format_dates",
    "gapfill",
    "gapfill_series",
    "load_classifier",
    "open_band_stack",
    "pixel_features",
    "predict_proba_map",
    "provenance_tags",
    "regular_dates",
    "s2_probabilities",
    "sample_pixels",
    "save_classifier",
    "train_s2_classifier",
    "write_proba_maps",
    "write_s2_maps",
]

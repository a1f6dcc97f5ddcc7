"""Segmentation networks, registered by name behind one contract.

Contract (every model in :data:`MODELS`, built with :func:`build_model`):

- **Input**: ``x`` float32 tensor ``(N, C, H, W)``, ``C = in_channels`` bands, each normalised
  per band (``(value - band_mean) / band_std``; 0 is the band mean, which is also what zero
  padding means at image borders). ``H`` and ``W`` must be multiples of ``model.downsample``,
  otherwise ``forward`` raises ``ValueError``.
- **Output**: logits ``(N, K, H, W)`` at full input resolution, one channel per real class in
  increasing nomenclature code order (no no-data class); softmax over dim 1 gives probabilities.
- **Attributes**: ``name`` (registry key), ``in_channels``, ``n_classes``, ``downsample`` (int),
  ``receptive_field`` (int, input pixels seen by one output pixel along each axis, computed from
  the layers), ``n_parameters()`` (trainable parameters).
- Works in train and eval mode (BatchNorm: use ``model.eval()`` to predict), with
  ``channels_last`` tensors and under ``torch.autocast("cpu", dtype=torch.bfloat16)`` (offered,
  not the default: argmax agrees with fp32 on nearly all pixels, throughput roughly doubles).

Registered models (numbers for ``in_channels=4, n_classes=10``):

- ``patch_cnn`` (:class:`~iota2_spot_s2.models.patch_cnn.PatchCNN`): 65x65 patch classifier,
  ≈108 k parameters, ``downsample=1``, ``receptive_field=65``. ``forward_patches(p)`` maps
  ``(N, C, 65, 65)`` to ``(N, K)`` (centre pixel); dense ``forward`` zero-pads by 32 px and runs
  the same weights as a dilated fully convolutional network, so output ``(i, j)`` equals
  ``forward_patches`` on the 65x65 patch centred on ``(i, j)`` of the padded input.
- ``fcn`` (:class:`~iota2_spot_s2.models.fcn.FCN`): residual encoder-decoder with U-Net skips and
  SegNet pooling indices, ≈1.33 M parameters, ``downsample=8``, ``receptive_field=134``,
  ``context=63`` (reach beyond an aligned core: the engine's margin), and
  ``forward_core(x, margin)`` (logits of the window less ``margin`` px, the decoder computed on
  the core alone; ``has_core_forward = True``).
- ``early_fusion`` (:class:`~iota2_spot_s2.models.fusion_net.EarlyFusionNet`): the ``fcn`` plus a
  Sentinel-2 temporal branch at 10 m whose features are interpolated to the 1/4 decoder level
  and concatenated there; ``forward(spot, s2=None, s2_valid=None)`` takes the S2 tensor at its
  own resolution (never resampled to 1.5 m); a missing S2 input uses a learned embedding.
  ≈1.38 M parameters, ``downsample = lcm(8, grid period)`` (40 for 1.5 m / 10 m).

Per-pixel Sentinel-2 classifiers (TempCNN, random forest) live in :mod:`iota2_spot_s2.timeseries`
(``models/tempcnn.py`` holds the TempCNN network); they map ``(N, C, T)`` to ``(N, K)``.

Example:
    >>> import torch
    >>> model = build_model("fcn", in_channels=4, n_classes=10).eval()
    >>> model(torch.zeros(1, 4, 64, 64)).shape
    torch.Size([1, 10, 64, 64])

"""

from iota2_spot_s2.models.base import SegmentationModel, count_parameters
from iota2_spot_s2.models.fcn import FCN
from iota2_spot_s2.models.patch_cnn import PATCH_SIZE, PatchCNN
from iota2_spot_s2.models.receptive_field import Support
from iota2_spot_s2.models.registry import MODELS, build_model, model_summary

__all__ = [
    "FCN",
    "MODELS",
    "PATCH_SIZE",
    "PatchCNN",
    "SegmentationModel",
    "Support",
    "build_model",
    "count_parameters",
    "model_summary",
]

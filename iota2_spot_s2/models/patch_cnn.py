"""Patch CNN: classifies the centre pixel of a 65x65 patch; evaluated densely with the same weights.

Architecture (valid convolutions, no padding; ``C`` input bands, ``K`` classes)::

    65 ─conv3 C→32─ 63 ─conv4 32→32─ 60 ─maxpool2─ 30 ─conv3 32→64─ 28 ─maxpool2─ 14
       ─conv3 64→48─ 12 ─conv3 48→64─ 10 ─maxpool2─ 5 ─[dropout]─ fully connected 64·5·5→K

Every convolution is followed by BatchNorm and ReLU. The receptive field is exactly the 65x65
patch (computed from the layers at construction), about 108 k parameters for C=4, K=10.

Dense evaluation (:meth:`PatchCNN.forward`) uses the à trous / shift-and-stitch equivalence: the
input is zero-padded by 32 px, every max-pooling runs with stride 1 and the dilation reached so
far, every later convolution is dilated by the product of the preceding pooling strides, and the
fully connected layer becomes a 5x5 convolution of dilation 8 (its weight reshaped). Output
``(i, j)`` then equals :meth:`PatchCNN.forward_patches` on the 65x65 patch centred on ``(i, j)``
of the zero-padded input (exactly, up to float rounding, with BatchNorm in eval mode), at a cost
of about 107 k multiply-adds per pixel instead of one patch per pixel.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from iota2_spot_s2.models.base import SegmentationModel, kaiming_init
from iota2_spot_s2.models.receptive_field import Support

PATCH_SIZE = 65
"""Side of the patch whose centre pixel is classified."""

# (kernel, out_channels, max-pool after) for each conv-BN-ReLU layer.
_LAYERS: tuple[tuple[int, int, bool], ...] = (
    (3, 32, False),
    (4, 32, True),
    (3, 64, True),
    (3, 48, False),
    (3, 64, True),
)


def _conv_bn_relu(in_channels: int, out_channels: int, kernel: int) -> list[nn.Module]:
    return [
        nn.Conv2d(in_channels, out_channels, kernel, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
    ]


class PatchCNN(SegmentationModel):
    """Sliding-window baseline with an exact dense (fully convolutional) evaluation.

    Args:
        in_channels: Number of input bands.
        n_classes: Number of real classes.
        dropout: Dropout probability before the fully connected layer (0 disables it).

    """

    name = "patch_cnn"
    downsample = 1

    def __init__(self, in_channels: int, n_classes: int, dropout: float = 0.0) -> None:
        super().__init__(in_channels, n_classes)
        layers: list[nn.Module] = []
        channels, size = in_channels, PATCH_SIZE
        for kernel, out_channels, pool in _LAYERS:
            layers += _conv_bn_relu(channels, out_channels, kernel)
            channels, size = out_channels, size - kernel + 1
            if pool:
                layers.append(nn.MaxPool2d(2))
                size //= 2
        self.features = nn.Sequential(*layers)
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(channels * size * size, n_classes)
        self._fc_shape = (n_classes, channels, size, size)
        rf = Support().through(self.features).conv(size)
        if rf.size != PATCH_SIZE or rf.lo != (0,):
            raise AssertionError(f"layer plan sees {rf.size} px, not the {PATCH_SIZE} px patch")
        self.receptive_field = rf.size
        kaiming_init(self)
        # The classifier starts near uniform (logit std ~0.01): He fan-out init of a 1600->K
        # layer gave initial logits of std ~23 and a first loss of ~40, a waste of short budgets.
        nn.init.normal_(self.fc.weight, std=0.01)

    def forward_patches(self, patches: torch.Tensor) -> torch.Tensor:
        """Classify the centre pixel of each patch.

        Args:
            patches: ``(N, C, 65, 65)`` float32, normalised per band.

        Returns:
            Logits ``(N, K)``.

        """
        if patches.ndim != 4 or tuple(patches.shape[1:]) != (
            self.in_channels,
            PATCH_SIZE,
            PATCH_SIZE,
        ):
            raise ValueError(
                f"patch_cnn expects (N, {self.in_channels}, {PATCH_SIZE}, {PATCH_SIZE}) patches,"
                f" got {tuple(patches.shape)}"
            )
        return self.fc(self.dropout(torch.flatten(self.features(patches), 1)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Dense logits: ``(N, C, H, W)`` -> ``(N, K, H, W)``, one 65x65 patch per pixel."""
        self.check_input(x)
        half = PATCH_SIZE // 2
        x = F.pad(x, (half, half, half, half))
        dilation = 1
        for layer in self.features:
            if isinstance(layer, nn.Conv2d):
                x = F.conv2d(x, layer.weight, layer.bias, dilation=dilation)
            elif isinstance(layer, nn.MaxPool2d):
                x = F.max_pool2d(x, layer.kernel_size, stride=1, dilation=dilation)
                dilation *= int(layer.stride)  # type: ignore[arg-type]
            else:
                x = layer(x)
        x = self.dropout(x)
        return F.conv2d(x, self.fc.weight.view(self._fc_shape), self.fc.bias, dilation=dilation)

"""TempCNN model contract: shapes, layers, input checks."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from iota2_spot_s2.models.tempcnn import TempCNN


def test_tempcnn_maps_series_to_logits() -> None:
    torch.manual_seed(0)
    model = TempCNN(13, 7, 33).eval()
    out = model(torch.randn(5, 13, 33))
    assert out.shape == (5, 7)
    assert model.receptive_field == 13
    convs = [m for m in model.modules() if isinstance(m, nn.Conv1d)]
    assert [(c.out_channels, c.kernel_size[0]) for c in convs] == [(64, 5)] * 3
    assert sum(isinstance(m, nn.BatchNorm1d) for m in model.modules()) == 4
    dense = [m for m in model.modules() if isinstance(m, nn.Linear)]
    assert [(d.in_features, d.out_features) for d in dense] == [(64 * 33, 256), (256, 7)]
    expected = (13 * 64 * 5 + 64) + 2 * (64 * 64 * 5 + 64) + 3 * 128 + (64 * 33 * 256 + 256)
    assert model.n_parameters() == expected + 2 * 256 + (256 * 7 + 7)
    assert TempCNN(**model.config()).n_parameters() == model.n_parameters()


def test_tempcnn_output_of_one_pixel_does_not_depend_on_the_batch_in_eval_mode() -> None:
    torch.manual_seed(1)
    model = TempCNN(2, 3, 20).eval()
    x = torch.randn(4, 2, 20)
    torch.testing.assert_close(model(x)[1:2], model(x[1:2]))


def test_tempcnn_rejects_wrong_shapes() -> None:
    model = TempCNN(2, 3, 20)
    with pytest.raises(ValueError):
        model(torch.zeros(4, 2, 21))
    with pytest.raises(ValueError):
        model(torch.zeros(4, 2, 20, 1))
    with pytest.raises(ValueError):
        TempCNN(2, 3, 20, kernel_size=4)

"""Where networks run: ``auto`` (CUDA when available, else CPU), ``cpu``, ``cuda`` or ``cuda:N``.

One resolver for every entry point (``train``, ``predict``, the chain and the iota2 step), so
that a machine without the asked GPU gets one clear message instead of a CUDA traceback.
"""

from __future__ import annotations

import os

import torch

from iota2_spot_s2.errors import InputError

DEVICE_CHOICES = "auto, cpu, cuda or cuda:N"


def resolve_device(text: str) -> torch.device:
    """The torch device named by ``text``.

    Raises:
        ValueError: An unknown name, or a CUDA device this machine does not have.

    """
    name = str(text).strip().lower()
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cpu":
        return torch.device("cpu")
    if name == "cuda" or (name.startswith("cuda:") and name[5:].isdigit()):
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        index = int(name[5:]) if ":" in name else 0
        if index >= count:
            raise ValueError(f"{text!r}: this machine has {count} CUDA device(s)")
        return torch.device("cuda", index)
    raise ValueError(f"{text!r} is not a device ({DEVICE_CHOICES})")


def resolve_cfg_device(text: str, source: str | os.PathLike[str]) -> torch.device:
    """:func:`resolve_device` for the cfg key ``spot_s2_fusion.device`` of ``source``.

    The key's spelling is checked with the rest of the cfg (settings schema); whether this
    machine has the GPU is known only where the chain runs, so it is checked here.

    Raises:
        InputError: Naming the cfg file and key, when this machine lacks the device.
    """
    try:
        return resolve_device(text)
    except ValueError as err:
        raise InputError(source, f"spot_s2_fusion.device {err}") from None

"""Where networks run: ``auto`` (CUDA when available, else CPU), ``cpu``, ``cuda`` or ``cuda:N``.

One resolver for every entry point (``train``, ``predict``, the chain and the iota2 step), so
that a machine without the asked GPU gets one clear message instead of a CUDA traceback.
"""

from __future__ import annotations

import torch

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

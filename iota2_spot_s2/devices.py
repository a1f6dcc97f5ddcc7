"""Where networks run: ``auto`` (CUDA when available, else CPU), ``cpu``, ``cuda`` or ``cuda:N``.

One resolver for every entry point (``train``, ``predict``, the chain and the iota2 step), so
that a machine without the asked GPU gets one clear message instead of a CUDA traceback.
torch is imported by the functions only: the CLI's parser takes :data:`PRECISIONS` from here.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from iota2_spot_s2.errors import InputError

if TYPE_CHECKING:
    import torch

DEVICE_CHOICES = "auto, cpu, cuda or cuda:N"


def resolve_device(text: str) -> torch.device:
    """The torch device named by ``text``.

    Raises:
        ValueError: An unknown name, or a CUDA device this machine does not have.

    """
    import torch

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


#: Arithmetic of a map's network (``predict --precision``, ``spot_s2_fusion.map_precision``):
#: ``fp32``; ``bf16`` autocast (CPUs and GPUs with bf16 units: A100, H100, recent Xeons and
#: EPYCs); ``fp16`` autocast (GPUs without bf16, such as V100 or T4). The softmax is computed
#: in float32 whatever the choice.
PRECISIONS = ("fp32", "bf16", "fp16")


def autocast_dtype(precision: str) -> torch.dtype | None:
    """The autocast dtype of ``precision`` (``None`` for fp32).

    Raises:
        ValueError: Not one of :data:`PRECISIONS`.

    """
    import torch

    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    return {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision)


def check_precision(precision: str, device: torch.device) -> str:
    """``precision``, when it suits ``device``: fp16 is refused on a CPU.

    PyTorch runs fp16 autocast on a CPU, but without fp16 units it converts every operand. On
    the 2-core AMD EPYC of ``benchmarks/bench_mapping.py`` the FCN ran 4.2x slower than fp32 on a
    512 px window (1.55 s against 0.37; bf16 0.13 s), and a whole map 6.9x slower (REAL Dubai
    aerial area, ``experiments/precision_real.py``: 0.14 against 0.96 Mpx/s). A cfg written for
    a V100 cluster that lands on a CPU node gets this error rather than a map 4-7x slower.

    Raises:
        ValueError: An unknown precision, or fp16 on a device that is not a CUDA GPU.

    """
    autocast_dtype(precision)
    if precision == "fp16" and device.type != "cuda":
        raise ValueError(
            f"fp16 needs a CUDA GPU, this run is on {device.type} (fp16 on a CPU runs 4-7x "
            "slower than fp32): use bf16 or fp32"
        )
    return precision


def resolve_cfg_precision(
    precision: str, device: str, source: str | os.PathLike[str], training: str | None = None
) -> str:
    """:func:`check_precision` of ``spot_s2_fusion.map_precision`` on ``device``: ``precision``.

    ``training``: also check ``spot_s2_fusion.training.precision`` (where the run trains).
    Called before anything is trained, so that a cfg asking for fp16 on a CPU node is refused
    at once rather than after hours of training.

    Raises:
        InputError: Naming the cfg file and key: a device this machine lacks, or fp16 where the
            chain runs on a CPU.
    """
    resolved = resolve_cfg_device(device, source)
    keys = {"map_precision": precision, "training.precision": training}
    for key, value in keys.items():
        if value is None:
            continue
        try:
            check_precision(value, resolved)
        except ValueError as err:
            raise InputError(source, f"spot_s2_fusion.{key} {err}") from None
    return precision


def autocast(device_type: str, precision: str) -> torch.autocast:
    """``torch.autocast`` on ``device_type`` for ``precision`` (disabled for fp32)."""
    import torch

    dtype = autocast_dtype(precision)
    return torch.autocast(device_type, dtype or torch.bfloat16, enabled=dtype is not None)

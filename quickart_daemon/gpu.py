"""Slots: where jobs run. One per GPU x jobs_per_gpu, or cpu_jobs CPU slots without a GPU.

A GPU slot pins its worker process to one device with CUDA_VISIBLE_DEVICES, so stage
code always sees its GPU as cuda:0. GPUs are found with `nvidia-smi -L` (no torch
import in the daemon: it starts fast and never initialises CUDA outside a worker).
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass, field

from .config import SlotsConfig


@dataclass(frozen=True)
class Slot:
    name: str
    device: str  # what the stage sees: "cuda:0" or "cpu"
    env: dict[str, str] = field(default_factory=dict, hash=False)


def detect_gpus() -> list[int]:
    """Indices of NVIDIA GPUs on this machine; empty when there are none (or no driver)."""
    if shutil.which("nvidia-smi") is None:
        return []
    try:
        out = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.TimeoutExpired):
        return []
    return [i for i, line in enumerate(l for l in out.splitlines() if l.startswith("GPU "))]


def make_slots(cfg: SlotsConfig, gpus: list[int] | None = None) -> list[Slot]:
    if cfg.gpus == "none":
        gpus = []
    elif isinstance(cfg.gpus, list):
        gpus = cfg.gpus
    elif gpus is None:
        gpus = detect_gpus()
    if gpus:
        return [Slot(f"gpu{g}.{k}", "cuda:0", {"CUDA_VISIBLE_DEVICES": str(g)})
                for g in gpus for k in range(cfg.jobs_per_gpu)]
    # no GPU: hide any from the stage code so it never tries CUDA half-way
    return [Slot(f"cpu.{k}", "cpu", {"CUDA_VISIBLE_DEVICES": ""}) for k in range(cfg.cpu_jobs)]

"""Slots: one per GPU x jobs_per_gpu, CPU slots without a GPU, each pinned by CUDA_VISIBLE_DEVICES."""

import shutil

import pytest

from quickart_daemon.config import SlotsConfig
from quickart_daemon.gpu import detect_gpus, make_slots


def test_gpu_slots_pin_one_device_each():
    slots = make_slots(SlotsConfig(gpus="auto", jobs_per_gpu=2), gpus=[0, 1])
    assert [s.name for s in slots] == ["gpu0.0", "gpu0.1", "gpu1.0", "gpu1.1"]
    assert [s.env["CUDA_VISIBLE_DEVICES"] for s in slots] == ["0", "0", "1", "1"]
    assert {s.device for s in slots} == {"cuda:0"}


def test_listed_gpus_and_none():
    assert [s.env["CUDA_VISIBLE_DEVICES"] for s in make_slots(SlotsConfig(gpus=[3]), gpus=[0, 1, 2, 3])] == ["3"]
    cpu = make_slots(SlotsConfig(gpus="none", cpu_jobs=2), gpus=[0])
    assert [(s.name, s.device, s.env["CUDA_VISIBLE_DEVICES"]) for s in cpu] == [("cpu.0", "cpu", ""), ("cpu.1", "cpu", "")]


@pytest.mark.skipif(shutil.which("nvidia-smi") is not None, reason="this machine has an NVIDIA driver")
def test_no_driver_means_cpu_slots():
    assert detect_gpus() == []
    assert [s.device for s in make_slots(SlotsConfig())] == ["cpu"]

"""Seeding, device choice, CPU threads and the smoke budget (aevb_utils.runtime)."""

from __future__ import annotations

import os
import random

import numpy as np
import pytest
import torch

import aevb_utils
from aevb_utils.runtime import (
    budget,
    choose_device,
    is_smoke,
    seed_everything,
    set_cpu_threads,
    setup,
)


def _draws():
    return random.random(), np.random.rand(3).tolist(), torch.rand(3).tolist()


def test_seed_everything_repeats():
    seed_everything(123)
    first = _draws()
    seed_everything(123)
    assert _draws() == first
    seed_everything(124)
    other = _draws()
    assert all(a != b for a, b in zip(other, first, strict=True))


@pytest.mark.parametrize("value", ["1", "true", "TRUE", "yes", " 1 "])
def test_smoke_on(monkeypatch, value):
    monkeypatch.setenv("AEVB_SMOKE", value)
    assert is_smoke() is True
    assert budget(1000, 3) == 3


@pytest.mark.parametrize("value", ["0", "", "false", "No", " "])
def test_smoke_off(monkeypatch, value):
    monkeypatch.setenv("AEVB_SMOKE", value)
    assert is_smoke() is False
    assert budget(1000, 3) == 1000


def test_smoke_unset(monkeypatch):
    monkeypatch.delenv("AEVB_SMOKE", raising=False)
    assert is_smoke() is False
    assert budget((1, 2), (3,)) == (1, 2)


@pytest.mark.parametrize("value", ["2", "maybe", "on"])
def test_smoke_invalid(monkeypatch, value):
    monkeypatch.setenv("AEVB_SMOKE", value)
    with pytest.raises(ValueError, match="AEVB_SMOKE"):
        is_smoke()
    with pytest.raises(ValueError, match="AEVB_SMOKE"):
        budget(1, 2)


def test_choose_device(monkeypatch):
    assert choose_device("cpu") == torch.device("cpu")
    assert choose_device("cuda:1") == torch.device("cuda", 1)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert choose_device() == torch.device("cpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert choose_device() == torch.device("cuda")
    assert choose_device("cpu") == torch.device("cpu")


def test_set_cpu_threads(monkeypatch):
    assert set_cpu_threads(3) == 3
    assert torch.get_num_threads() == 3
    assert set_cpu_threads(0) == 1
    assert torch.get_num_threads() == 1
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    expected = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    assert set_cpu_threads() == expected
    assert torch.get_num_threads() == expected


def test_set_cpu_threads_follows_omp_num_threads(monkeypatch):
    # The build runs several chapters at once and gives each kernel its share of the cores.
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    assert set_cpu_threads() == 1
    assert torch.get_num_threads() == 1
    assert set_cpu_threads(2) == 2  # an explicit count wins


def test_setup(monkeypatch, capsys):
    monkeypatch.setenv("AEVB_SMOKE", "1")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    device = setup(seed=7, threads=2)
    value = torch.rand(2)
    assert device == torch.device("cpu")
    assert torch.get_num_threads() == 2
    out = capsys.readouterr().out
    assert out.startswith("device: cpu, CPU threads: 2")
    assert "seed 7" in out and "smoke" in out and torch.__version__ in out
    torch.manual_seed(7)
    assert torch.equal(value, torch.rand(2))  # setup seeded torch

    monkeypatch.setenv("AEVB_SMOKE", "0")
    setup(seed=1, threads=1)
    assert "full budget" in capsys.readouterr().out


def test_package_exports_everything_it_lists():
    missing = [name for name in aevb_utils.__all__ if not hasattr(aevb_utils, name)]
    assert missing == []
    assert len(set(aevb_utils.__all__)) == len(aevb_utils.__all__)

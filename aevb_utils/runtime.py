"""Seeding, device choice, CPU threads and the training budget (full or smoke)."""

from __future__ import annotations

import os
import random
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TypeVar

import numpy as np
import torch

T = TypeVar("T")

SMOKE_VARIABLE = "AEVB_SMOKE"


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and PyTorch (CPU and every GPU) so that a run can be repeated."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)  # also seeds every CUDA device


def choose_device(prefer: str | None = None) -> torch.device:
    """The GPU when one is present, else the CPU; `prefer` (e.g. "cpu") overrides."""
    if prefer is not None:
        return torch.device(prefer)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def usable_cores() -> int:
    """The number of cores this process may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def set_cpu_threads(n: int | None = None) -> int:
    """Use `n` CPU threads for PyTorch. The default is OMP_NUM_THREADS when it is set (the book's
    build sets it when it runs several chapters at once), else every core this process may use."""
    if n is None:
        n = int(os.environ.get("OMP_NUM_THREADS") or 0) or usable_cores()
    n = max(1, int(n or 1))
    torch.set_num_threads(n)
    return n


def env_flag(name: str) -> bool:
    """A yes/no environment variable: unset, "", 0, false or no mean no; 1, true or yes mean yes."""
    value = os.environ.get(name, "0").strip().lower()
    if value in ("", "0", "false", "no"):
        return False
    if value in ("1", "true", "yes"):
        return True
    raise ValueError(f"{name}={value!r} is not understood; set it to 1 (yes) or 0 (no).")


def is_smoke() -> bool:
    """True when AEVB_SMOKE=1: the notebook tests run each chapter with a tiny budget."""
    return env_flag(SMOKE_VARIABLE)


def budget(full: T, smoke: T) -> T:
    """The full training budget, or the smoke budget under AEVB_SMOKE=1.

    Only sizes go through here (steps, samples, points), never a choice of code path,
    so the smoke run executes exactly the code of the real build.
    """
    return smoke if is_smoke() else full


def setup(seed: int = 0, threads: int | None = None) -> torch.device:
    """The first cell of every chapter: seed, set CPU threads, pick and report the device."""
    seed_everything(seed)
    n = set_cpu_threads(threads)
    device = choose_device()
    mode = "smoke (tiny budget)" if is_smoke() else "full budget"
    print(f"device: {device}, CPU threads: {n}, torch {torch.__version__}, seed {seed}, {mode}")
    return device


class ChapterTimer:
    """Wall-clock seconds of each part of a chapter, for its summary:
    `timer = ChapterTimer()`, then `with timer("training"): ...`; `timer.total()` counts from
    the timer's creation."""

    def __init__(self) -> None:
        self.started = time.perf_counter()
        self.seconds: dict[str, float] = {}

    @contextmanager
    def __call__(self, section: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            elapsed = time.perf_counter() - start
            self.seconds[section] = self.seconds.get(section, 0.0) + elapsed

    def total(self) -> float:
        return time.perf_counter() - self.started

"""The one AEVB training loop of the book.

AEVB is a single algorithm: every model in the book only says how to estimate its ELBO for each
example in a batch (`model.elbo(*batch)`, a tensor of shape [batch]); `fit` then takes
simultaneous stochastic gradient steps on all parameters, generative (theta) and variational
(phi) alike.
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

import torch
from tqdm.std import tqdm

from .evaluation import Data, as_tensors, average_elbo
from .runtime import choose_device


class ELBOModel(Protocol):
    def elbo(self, *batch: torch.Tensor) -> torch.Tensor:
        """One ELBO estimate per example: shape [batch]."""
        ...


class NonFiniteELBOError(FloatingPointError):
    """Training produced a NaN or infinite ELBO."""


@dataclass
class History:
    """What `fit` recorded: at each evaluation step, the mean training ELBO of the mini-batches
    since the previous record, the held-out ELBO (if held-out data was given) and any metric
    returned by `monitor`."""

    step: list[int] = field(default_factory=list)
    train_elbo: list[float] = field(default_factory=list)
    valid_elbo: list[float] = field(default_factory=list)
    metrics: dict[str, list[float]] = field(default_factory=dict)
    seconds: float = 0.0

    def record(self, step: int, train: float, valid: float, metrics: dict[str, float]) -> None:
        self.step.append(step)
        self.train_elbo.append(train)
        self.valid_elbo.append(valid)
        for name, value in metrics.items():
            self.metrics.setdefault(name, []).append(float(value))


class _LiveLine:
    """A file for tqdm that shows its bar as one line of a notebook output, updated in place.

    tqdm redraws with carriage returns, which an executed notebook stores as one line per
    redraw; an updated display keeps only the latest line, in Jupyter and in the built book.
    """

    encoding = "utf-8"  # tqdm then draws its bar with block characters, not with "#"

    def __init__(self) -> None:
        from IPython.display import Pretty, display

        self._pretty = Pretty
        self._handle = display(Pretty(""), display_id=True)

    def write(self, text: str) -> None:
        line = text.replace("\r", "").strip()
        if line:
            self._handle.update(self._pretty(line))

    def flush(self) -> None:
        pass


def _progress_stream():
    """Where the progress bar goes: a live line in a Jupyter kernel, else standard output."""
    try:
        from IPython import get_ipython
    except ImportError:
        return sys.stdout
    shell = get_ipython()
    return _LiveLine() if shell is not None and hasattr(shell, "kernel") else sys.stdout


def _batches(n: int, batch_size: int, generator: torch.Generator):
    """Endless mini-batch indices; a fresh shuffle every epoch, every batch full-sized."""
    while True:
        order = torch.randperm(n, generator=generator)
        for start in range(0, n - batch_size + 1, batch_size):
            yield order[start : start + batch_size]


def _check_elbo(elbo: torch.Tensor, batch_size: int) -> None:
    if elbo.shape != (batch_size,):
        raise ValueError(
            f"model.elbo must return one ELBO estimate per example, shape [{batch_size}]; "
            f"got shape {tuple(elbo.shape)}. Sum over data dimensions, not over the batch."
        )


def fit(
    model: torch.nn.Module,
    train: Data,
    *,
    steps: int,
    batch_size: int = 100,
    lr: float = 1e-3,
    valid: Data | None = None,
    eval_every: int | None = None,
    monitor: Callable[[torch.nn.Module], dict[str, float]] | None = None,
    transform: Callable[[torch.Tensor], torch.Tensor] | None = None,
    lr_schedule: Callable[[int], float] | None = None,
    seed: int = 0,
    device: torch.device | str | None = None,
    progress: bool = True,
    description: str = "AEVB",
) -> History:
    """Maximize the average ELBO of `model` on `train` by Adam steps on all parameters at once.

    train, valid: a tensor, or a tuple of tensors (e.g. images and labels) indexed by example;
        each mini-batch is passed on as `model.elbo(*batch)`.
    steps: the training budget, in gradient steps (so time does not depend on data size).
    eval_every: record history every this many steps (default: 20 records in all).
    monitor: called with the model at every record; returns extra metrics to keep.
    transform: applied to the first tensor of every mini-batch when it is drawn
        (e.g. `bernoulli_binarize` for dynamic binarization).
    lr_schedule: multiplies the learning rate at each step (`torch.optim.lr_scheduler.LambdaLR`).
    """
    if steps < 1 or batch_size < 1:
        raise ValueError("steps and batch_size must be positive.")
    device = choose_device() if device is None else torch.device(device)
    tensors = tuple(t.to(device) for t in as_tensors(train))
    valid_tensors = None if valid is None else tuple(t.to(device) for t in as_tensors(valid))
    n = tensors[0].shape[0]
    batch_size = min(batch_size, n)
    eval_every = eval_every or max(1, steps // 20)

    model.to(device)
    torch.manual_seed(seed)  # the noise of the ELBO estimates
    shuffle = torch.Generator().manual_seed(seed)  # the order of the mini-batches
    parameters = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.Adam(parameters, lr=lr)
    scheduler = (
        None if lr_schedule is None else torch.optim.lr_scheduler.LambdaLR(optimizer, lr_schedule)
    )

    history = History()

    def record(step: int, train_elbo: float) -> None:
        held_out = average_elbo(model, valid_tensors) if valid_tensors is not None else math.nan
        metrics = monitor(model) if monitor is not None else {}
        history.record(step, train_elbo, held_out, metrics)
        model.train()

    record(0, math.nan)
    start = time.perf_counter()
    interval_sum, interval_count, last_finite = 0.0, 0, (0, math.nan)
    bar = tqdm(
        total=steps,
        desc=description,
        file=_progress_stream() if progress else sys.stdout,
        disable=not progress,
        mininterval=1.0,
        ncols=100,
        unit="step",
    )
    batches = _batches(n, batch_size, shuffle)
    model.train()
    for step in range(1, steps + 1):
        index = next(batches).to(device)
        batch = [t[index] for t in tensors]
        if transform is not None:
            batch[0] = transform(batch[0])
        elbo = model.elbo(*batch)
        _check_elbo(elbo, batch_size)
        loss = -elbo.mean()
        value = -loss.item()
        if not math.isfinite(value):
            bar.close()
            before = (
                f"the last finite value was {last_finite[1]:.4g} at step {last_finite[0]}"
                if last_finite[0] > 0
                else "no step before it was finite"
            )
            raise NonFiniteELBOError(
                f"the mini-batch ELBO became {value} at step {step}; {before}. Lower the learning "
                f"rate, or look for a log of zero or a variance that collapsed in model.elbo."
            )
        last_finite = (step, value)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if scheduler is not None:
            scheduler.step()
        interval_sum, interval_count = interval_sum + value, interval_count + 1
        bar.update(1)
        if step % 10 == 0 or step == steps:
            bar.set_postfix_str(f"elbo={interval_sum / interval_count:.3f}", refresh=False)
        if step % eval_every == 0 or step == steps:
            record(step, interval_sum / interval_count)
            interval_sum, interval_count = 0.0, 0
    bar.close()
    history.seconds = time.perf_counter() - start
    model.eval()
    return history

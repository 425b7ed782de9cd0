"""The one AEVB training loop of the book.

AEVB is a single algorithm: every model in the book only says how to estimate its ELBO for each
example in a batch (`model.elbo(*batch)`, a tensor of shape [batch]); `fit` then takes
simultaneous stochastic gradient steps on all trainable parameters, generative (theta) and
variational (phi) alike.
"""

from __future__ import annotations

import inspect
import math
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import torch
from tqdm.std import tqdm

from .data import Data, as_tensors, shuffled_batch_indices
from .evaluation import average_elbo, check_elbo_shape
from .progress import progress_stream
from .runtime import choose_device


class NonFiniteELBOError(FloatingPointError):
    """Training produced a NaN or infinite ELBO."""


@dataclass
class History:
    """What `fit` recorded: at each evaluation step, the mean training ELBO of the mini-batches
    since the previous record, the held-out ELBO (if held-out data was given) and any metric
    returned by `monitor` (and `grad_norm`, the mean gradient norm before clipping)."""

    step: list[int] = field(default_factory=list)
    train_elbo: list[float] = field(default_factory=list)
    valid_elbo: list[float] = field(default_factory=list)
    metrics: dict[str, list[float]] = field(default_factory=dict)
    seconds: float = 0.0
    # fit(keep=...): a copy of the parameters after each of those steps, and the seconds it took
    kept: dict[int, dict[str, torch.Tensor]] = field(default_factory=dict)
    kept_seconds: dict[int, float] = field(default_factory=dict)

    @property
    def last_step(self) -> int:
        return self.step[-1] if self.step else 0

    def record(self, step: int, train: float, valid: float, metrics: dict[str, float]) -> None:
        self.step.append(step)
        self.train_elbo.append(train)
        self.valid_elbo.append(valid)
        for name, value in metrics.items():
            self.metrics.setdefault(name, []).append(float(value))


def set_trainable(parameters: torch.nn.Module | Iterable[torch.nn.Parameter], on: bool) -> None:
    """Freeze (`on=False`) or unfreeze a group of parameters; `fit` only steps trainable ones,
    so alternating phases (EM-style) are `set_trainable` followed by `fit`."""
    if isinstance(parameters, torch.nn.Module):
        parameters = parameters.parameters()
    for parameter in parameters:
        parameter.requires_grad_(on)


def cosine_decay(total_steps: int) -> Callable[[int], float]:
    """An `lr_schedule` for `fit`: the learning rate falls from its value to 0 along a half
    cosine over `total_steps`, which gets a better model out of a short run than a constant rate."""

    def multiplier(step: int) -> float:
        return 0.5 * (1 + math.cos(math.pi * min(step, total_steps) / total_steps))

    return multiplier


def _wants_step(model: torch.nn.Module) -> bool:
    """Does `model.elbo` take the training step (for a temperature or KL-weight schedule)?"""
    return "step" in inspect.signature(model.elbo).parameters


def _non_finite_error(value: float, step: int, last_finite: tuple[int, float]) -> Exception:
    before = (
        f"the last finite value was {last_finite[1]:.4g} at step {last_finite[0]}"
        if last_finite[0] > 0
        else "no step before it was finite"
    )
    return NonFiniteELBOError(
        f"the mini-batch ELBO became {value} at step {step}; {before}. Lower the learning "
        f"rate, clip the gradient norm, or look for a log of zero or a variance that collapsed "
        f"in model.elbo."
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
    clip_grad_norm: float | None = None,
    seconds: float | None = None,
    keep: Iterable[int] = (),
    history: History | None = None,
    seed: int = 0,
    device: torch.device | str | None = None,
    progress: bool = True,
    description: str = "AEVB",
) -> History:
    """Maximize the average ELBO of `model` on `train` by Adam steps on all trainable
    parameters at once (the AEVB algorithm).

    train, valid: a tensor, or a tuple of tensors (e.g. images and labels) indexed by example;
        each mini-batch is passed on as `model.elbo(*batch)`, plus `step=` if `elbo` takes it.
    steps: the training budget, in gradient steps (so time does not depend on data size).
    eval_every: record history every this many steps (default: 20 records in all).
    monitor: called with the model at every record; returns extra metrics to keep.
    transform: applied to the first tensor of every mini-batch when it is drawn
        (e.g. `bernoulli_binarize` for dynamic binarization).
    lr_schedule: multiplies the learning rate; called with the number of steps taken before.
    clip_grad_norm: rescale the gradient to at most this norm before each step.
    seconds: a time budget, for comparisons at equal time: stop after the first step at which
        this call's training time (monitoring included) reaches `seconds`; `steps` is then the
        most it may take, and the history's last step says how many it took. The count depends
        on the machine's speed, so use it only where the time, not the count, is the budget.
    keep: steps after which to keep a copy of the parameters (`history.kept[step]`, with the
        training seconds up to it in `history.kept_seconds[step]`). With a constant learning
        rate the copy after step n is the model that a run of n steps gives.
    history: continue this history (a later phase of training): steps count on from its end.
    """
    if steps < 1 or batch_size < 1:
        raise ValueError("steps and batch_size must be positive.")
    if seconds is not None and not seconds > 0:
        raise ValueError(f"seconds must be a positive time budget; got {seconds}.")
    keep = set(keep)
    device = choose_device() if device is None else torch.device(device)
    tensors = tuple(t.to(device) for t in as_tensors(train))
    valid_tensors = None if valid is None else tuple(t.to(device) for t in as_tensors(valid))
    batch_size = min(batch_size, len(tensors[0]))
    eval_every = eval_every or max(1, steps // 20)
    history = History() if history is None else history
    first = history.last_step  # steps already taken by earlier phases

    model.to(device)
    torch.manual_seed(seed)  # the noise of the ELBO estimates
    shuffle = torch.Generator().manual_seed(seed)  # the order of the mini-batches
    batches = shuffled_batch_indices(len(tensors[0]), batch_size, shuffle)
    parameters = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.Adam(parameters, lr=lr)
    step_argument = _wants_step(model)

    def record(step: int, train_elbo: float, grad_norm: float) -> None:
        held_out = average_elbo(model, valid_tensors) if valid_tensors is not None else math.nan
        metrics = monitor(model) if monitor is not None else {}
        if clip_grad_norm is not None:
            metrics["grad_norm"] = grad_norm
        history.record(step, train_elbo, held_out, metrics)
        model.train()

    if not history.step:
        record(0, math.nan, math.nan)
    start = time.perf_counter()
    totals = {"elbo": 0.0, "grad_norm": 0.0, "count": 0}
    last_finite = (0, math.nan)
    stream = progress_stream() if progress else sys.stdout  # no empty display when silent
    bar = tqdm(total=steps, desc=description, file=stream, disable=not progress,
               mininterval=1.0, ncols=100, unit="step")
    model.train()
    for step in range(first + 1, first + steps + 1):
        # 1. a mini-batch
        index = next(batches).to(device)
        batch = [t[index] for t in tensors]
        if transform is not None:
            batch[0] = transform(batch[0])
        # 2. the model's ELBO estimate for each example
        elbo = model.elbo(*batch, step=step) if step_argument else model.elbo(*batch)
        check_elbo_shape(elbo, batch_size)
        value = elbo.mean().item()
        if not math.isfinite(value):
            bar.close()
            raise _non_finite_error(value, step, last_finite)
        last_finite = (step, value)
        # 3. the gradient of the mean ELBO with respect to every trainable parameter
        optimizer.zero_grad(set_to_none=True)
        (-elbo.mean()).backward()
        grad_norm = math.nan
        if clip_grad_norm is not None:
            grad_norm = torch.nn.utils.clip_grad_norm_(parameters, clip_grad_norm).item()
        # 4. one ascent step on all of them together
        if lr_schedule is not None:
            for group in optimizer.param_groups:
                group["lr"] = lr * lr_schedule(step - 1)
        optimizer.step()
        if step in keep:
            history.kept[step] = {k: v.detach().clone() for k, v in model.state_dict().items()}
            history.kept_seconds[step] = history.seconds + time.perf_counter() - start

        totals["elbo"] += value
        totals["grad_norm"] += grad_norm
        totals["count"] += 1
        bar.update(1)
        if step % 10 == 0:
            bar.set_postfix_str(f"elbo={totals['elbo'] / totals['count']:.3f}", refresh=False)
        out_of_time = seconds is not None and time.perf_counter() - start >= seconds
        if (step - first) % eval_every == 0 or step == first + steps or out_of_time:
            record(step, totals["elbo"] / totals["count"], totals["grad_norm"] / totals["count"])
            totals = {"elbo": 0.0, "grad_norm": 0.0, "count": 0}
        if out_of_time:
            break
    bar.close()
    history.seconds += time.perf_counter() - start
    model.eval()
    return history

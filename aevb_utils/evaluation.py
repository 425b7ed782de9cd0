"""Evaluating a trained model: average ELBO, importance-weighted log-likelihood, clustering."""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment

Data = torch.Tensor | Sequence[torch.Tensor]


def as_tensors(data: Data) -> tuple[torch.Tensor, ...]:
    """A tensor, or a tuple of tensors indexed by example, as a tuple of equal-length tensors."""
    tensors = (data,) if isinstance(data, torch.Tensor) else tuple(data)
    if not tensors or not all(isinstance(t, torch.Tensor) for t in tensors):
        raise TypeError("data must be a tensor or a tuple of tensors (e.g. images, labels).")
    lengths = {t.shape[0] for t in tensors}
    if len(lengths) != 1:
        raise ValueError(f"the tensors of a data set must have equal lengths, got {lengths}.")
    return tensors


def _batches(data: Data, batch_size: int, device: torch.device) -> Iterator[list[torch.Tensor]]:
    tensors = as_tensors(data)
    for start in range(0, tensors[0].shape[0], batch_size):
        yield [t[start : start + batch_size].to(device) for t in tensors]


def _device_of(model: torch.nn.Module) -> torch.device:
    parameter = next(model.parameters(), None)
    return parameter.device if parameter is not None else torch.device("cpu")


@torch.no_grad()
def elbo_per_example(model: torch.nn.Module, data: Data, batch_size: int = 1000) -> torch.Tensor:
    """`model.elbo` on every example of `data`, in batches, without gradients (on the CPU)."""
    was_training = model.training
    model.eval()
    try:
        values = [
            model.elbo(*batch).cpu() for batch in _batches(data, batch_size, _device_of(model))
        ]
    finally:
        model.train(was_training)
    return torch.cat(values)


def average_elbo(model: torch.nn.Module, data: Data, batch_size: int = 1000) -> float:
    """The ELBO averaged over the examples of `data` (nats per example)."""
    return elbo_per_example(model, data, batch_size).mean().item()


def log_mean_exp(x: torch.Tensor, dim: int = 0) -> torch.Tensor:
    """log(mean(exp(x))) along `dim`, computed stably."""
    return torch.logsumexp(x, dim=dim) - math.log(x.shape[dim])


@dataclass
class Estimate:
    """An average over examples with its standard error; `values` holds one per example."""

    mean: float
    stderr: float
    values: torch.Tensor

    def __str__(self) -> str:
        return f"{self.mean:.2f} ± {self.stderr:.2f}"


def mean_with_stderr(values: torch.Tensor) -> Estimate:
    values = values.detach().double().cpu()
    stderr = values.std().item() / math.sqrt(len(values)) if len(values) > 1 else math.nan
    return Estimate(values.mean().item(), stderr, values)


@torch.no_grad()
def importance_weighted_log_likelihood(
    model: torch.nn.Module,
    data: Data,
    num_samples: int = 1000,
    batch_size: int = 100,
    samples_per_pass: int = 100,
) -> Estimate:
    """Estimate log p(x) by importance sampling with the encoder as proposal (Burda et al. 2016):

        log p(x) ≈ log (1/K) Σ_k p(x, z_k) / q(z_k | x),   z_k ~ q(z | x),

    a lower bound in expectation that tightens to log p(x) as K grows and equals the ELBO
    estimate at K = 1. The model supplies `log_importance_weights(*batch, num_samples=k)`,
    of shape [k, batch]. Returns the average over examples and its standard error.
    """
    if num_samples < 1:
        raise ValueError("num_samples must be at least 1.")
    was_training = model.training
    model.eval()
    estimates = []
    try:
        for batch in _batches(data, batch_size, _device_of(model)):
            weights = []
            for done in range(0, num_samples, samples_per_pass):
                k = min(samples_per_pass, num_samples - done)
                weights.append(model.log_importance_weights(*batch, num_samples=k).double())
            estimates.append(log_mean_exp(torch.cat(weights), dim=0).cpu())
    finally:
        model.train(was_training)
    return mean_with_stderr(torch.cat(estimates))


def clustering_accuracy(
    labels: Sequence[int] | torch.Tensor, clusters: Sequence[int] | torch.Tensor
) -> float:
    """Accuracy of `clusters` under the best one-to-one map from clusters to labels
    (the Hungarian algorithm on the contingency table)."""
    labels = np.asarray(labels, dtype=np.int64)
    clusters = np.asarray(clusters, dtype=np.int64)
    if labels.shape != clusters.shape or labels.ndim != 1:
        raise ValueError("labels and clusters must be vectors of the same length.")
    table = np.zeros((clusters.max() + 1, labels.max() + 1), dtype=np.int64)
    np.add.at(table, (clusters, labels), 1)
    rows, cols = linear_sum_assignment(table, maximize=True)
    return table[rows, cols].sum() / len(labels)

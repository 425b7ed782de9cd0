"""Evaluating a trained model: average ELBO, importance-weighted log-likelihood, clustering.

Every model keeps one contract, checked here and in `fit`: `model.elbo(*batch)` returns one ELBO
per example (shape [batch]; a sequence model sums over time steps), and
`model.log_importance_weights(*batch, num_samples=K)` returns one log-weight per sample and
example (shape [K, batch]; a discrete latent is summed out, a sequence of latents is one sample).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment

from .data import Data, batches_in_order


def check_elbo_shape(elbo: torch.Tensor, batch_size: int, source: str = "model.elbo") -> None:
    """One ELBO estimate per example, or a clear error that says how to fix the model."""
    if elbo.shape != (batch_size,):
        raise ValueError(
            f"{source} must return one ELBO estimate per example, shape [{batch_size}]; "
            f"got shape {tuple(elbo.shape)}. Sum over data dimensions (and time steps), "
            f"not over the batch."
        )


def check_log_weights_shape(log_w: torch.Tensor, num_samples: int, batch_size: int) -> None:
    """One log importance weight per sample and example, shape [K, batch]."""
    if log_w.shape != (num_samples, batch_size):
        raise ValueError(
            f"model.log_importance_weights must return shape [num_samples, batch] = "
            f"[{num_samples}, {batch_size}]; got shape {tuple(log_w.shape)}. Sum over data "
            f"dimensions and time steps (a sequence of latents is one sample), and sum a "
            f"discrete latent out inside each weight."
        )


def _device_of(model: torch.nn.Module) -> torch.device:
    parameter = next(model.parameters(), None)
    return parameter.device if parameter is not None else torch.device("cpu")


@torch.no_grad()
def elbo_per_example(model: torch.nn.Module, data: Data, batch_size: int = 1000) -> torch.Tensor:
    """`model.elbo` on every example of `data`, in batches, without gradients (on the CPU)."""
    was_training = model.training
    model.eval()
    values = []
    try:
        for batch in batches_in_order(data, batch_size, _device_of(model)):
            elbo = model.elbo(*batch)
            check_elbo_shape(elbo, len(batch[0]))
            values.append(elbo.cpu())
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
    """The mean of per-example values and its standard error (one value per example)."""
    values = values.detach().double().cpu()
    if values.ndim != 1:
        raise ValueError(
            f"mean_with_stderr takes one value per example, shape [N]; got {tuple(values.shape)}."
        )
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
        for batch in batches_in_order(data, batch_size, _device_of(model)):
            weights = []
            for done in range(0, num_samples, samples_per_pass):
                k = min(samples_per_pass, num_samples - done)
                log_w = model.log_importance_weights(*batch, num_samples=k)
                check_log_weights_shape(log_w, k, len(batch[0]))
                weights.append(log_w.double())
            estimates.append(log_mean_exp(torch.cat(weights), dim=0).cpu())
    finally:
        model.train(was_training)
    return mean_with_stderr(torch.cat(estimates))


def confusion_matrix(
    labels: torch.Tensor, predicted: torch.Tensor, num_classes: int
) -> torch.Tensor:
    """Counts of (label, prediction) pairs: row i, column j counts examples of label i predicted
    (or clustered) as j."""
    labels, predicted = torch.as_tensor(labels).long(), torch.as_tensor(predicted).long()
    if labels.shape != predicted.shape or labels.ndim != 1:
        raise ValueError("labels and predictions must be vectors of the same length.")
    counts = torch.bincount(labels * num_classes + predicted, minlength=num_classes**2)
    return counts.reshape(num_classes, num_classes)


def match_clusters(
    labels: Sequence[int] | torch.Tensor, clusters: Sequence[int] | torch.Tensor
) -> dict[int, int]:
    """The one-to-one map from clusters to labels that agrees with the most examples
    (the Hungarian algorithm on the contingency table of clusters against labels)."""
    labels = np.asarray(labels, dtype=np.int64)
    clusters = np.asarray(clusters, dtype=np.int64)
    if labels.shape != clusters.shape or labels.ndim != 1:
        raise ValueError("labels and clusters must be vectors of the same length.")
    table = np.zeros((clusters.max() + 1, labels.max() + 1), dtype=np.int64)
    np.add.at(table, (clusters, labels), 1)
    rows, cols = linear_sum_assignment(table, maximize=True)
    return {int(r): int(c) for r, c in zip(rows, cols, strict=True)}


def clustering_accuracy(
    labels: Sequence[int] | torch.Tensor, clusters: Sequence[int] | torch.Tensor
) -> float:
    """Accuracy of `clusters` under the best one-to-one map from clusters to labels."""
    labels = np.asarray(labels, dtype=np.int64)
    clusters = np.asarray(clusters, dtype=np.int64)
    mapping = match_clusters(labels, clusters)
    predicted = np.array([mapping.get(int(c), -1) for c in clusters])
    return float((predicted == labels).mean())

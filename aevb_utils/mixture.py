"""Exact EM for a Gaussian mixture, with diagonal or full covariances, in any number of dimensions.

Model: y ~ Cat(weights), x | y ~ N(means[y], Σ_y), with Σ_y = diag(variances[y]) or a full
covariance matrix. Chapter 1 derives EM for the one-dimensional mixture: the E-step's q(y | x) is
the exact posterior (the "responsibilities"), the M-step's weighted averages are the exact
maximizers, and the log-likelihood never falls. The Gaussian-mixture VAE chapter uses this to
start its prior p(z | y) from a mixture fitted to the codes of a pretrained VAE (the VaDE
initialization).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from torch.distributions import MultivariateNormal

from .densities import gaussian_log_density

Covariance = Literal["diagonal", "full"]


class _Mixture:
    weights: torch.Tensor  # p(y), [C]

    def log_joint(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def log_likelihood(self, x: torch.Tensor) -> torch.Tensor:
        """log p(x) = log sum_y p(x, y), shape [N]."""
        return torch.logsumexp(self.log_joint(x), dim=1)

    def responsibilities(self, x: torch.Tensor) -> torch.Tensor:
        """p(y | x), shape [N, C]: the E-step's optimal q."""
        return torch.softmax(self.log_joint(x), dim=1)


@dataclass(frozen=True)
class DiagonalGaussianMixture(_Mixture):
    weights: torch.Tensor  # p(y), [C]
    means: torch.Tensor  # [C, D]
    variances: torch.Tensor  # [C, D]

    def log_joint(self, x: torch.Tensor) -> torch.Tensor:
        """log p(x, y) for every point and component, shape [N, C]."""
        return self.weights.log() + gaussian_log_density(
            x[:, None, :], self.means, self.variances.log()
        )


@dataclass(frozen=True)
class GaussianMixture(_Mixture):
    weights: torch.Tensor  # p(y), [C]
    means: torch.Tensor  # [C, D]
    covariances: torch.Tensor  # [C, D, D], symmetric positive definite

    def log_joint(self, x: torch.Tensor) -> torch.Tensor:
        """log p(x, y) for every point and component, shape [N, C]."""
        components = MultivariateNormal(self.means, covariance_matrix=self.covariances)
        return self.weights.log() + components.log_prob(x[:, None, :])


@dataclass(frozen=True)
class MixtureFit:
    mixture: DiagonalGaussianMixture | GaussianMixture
    log_likelihood: list[float]  # mean log p(x) after every iteration of the best start
    restart_log_likelihoods: list[float]  # final mean log p(x) of every start


def _check_points(x: torch.Tensor, components: int) -> None:
    if x.ndim != 2:
        raise ValueError(f"x must be a matrix of points [N, D]; got shape {tuple(x.shape)}.")
    if not 1 <= components <= len(x):
        raise ValueError(
            f"components must be between 1 and the number of points ({len(x)}); got {components}."
        )
    if not bool(torch.isfinite(x).all()):
        raise ValueError("x contains NaN or infinite values; remove or impute them before EM.")


def _check_covariance(covariance: str) -> None:
    if covariance not in ("diagonal", "full"):
        raise ValueError(f"covariance must be 'diagonal' or 'full'; got {covariance!r}.")


def mixture_m_step(
    x: torch.Tensor, q: torch.Tensor, min_variance: float = 1e-6,
    covariance: Covariance = "diagonal",
) -> DiagonalGaussianMixture | GaussianMixture:
    """The parameters that maximize sum_n E_{q_n}[log p(x_n, y)]: weighted counts, means and
    variances (or covariance matrices). min_variance keeps a component that shrinks onto one
    point from collapsing: it bounds the variances below, or is added to the covariances'
    diagonal."""
    _check_covariance(covariance)
    counts = q.sum(0)  # [C]
    safe = counts.clamp(min=torch.finfo(x.dtype).tiny)
    means = (q.T @ x) / safe[:, None]
    weights = counts / len(x)
    if covariance == "diagonal":
        variances = (q.T @ x**2) / safe[:, None] - means**2
        return DiagonalGaussianMixture(weights, means, variances.clamp(min=min_variance))
    centred = x - means[:, None, :]  # [C, N, D]
    scatter = (q.T[:, :, None] * centred).transpose(1, 2) @ centred  # sum_n q_nc d_nc d_ncᵀ
    ridge = min_variance * torch.eye(x.shape[1], dtype=x.dtype, device=x.device)
    return GaussianMixture(weights, means, scatter / safe[:, None, None] + ridge)


def _random_start(
    x: torch.Tensor, components: int, generator: torch.Generator, covariance: Covariance
) -> DiagonalGaussianMixture | GaussianMixture:
    # Means at distinct random points, every component with the data's variance, equal weights.
    means = x[torch.randperm(len(x), generator=generator)[:components]].clone()
    variances = x.var(0, unbiased=False).clamp(min=1e-6).expand(components, -1).clone()
    weights = torch.full((components,), 1 / components, dtype=x.dtype)
    if covariance == "diagonal":
        return DiagonalGaussianMixture(weights, means, variances)
    return GaussianMixture(weights, means, torch.diag_embed(variances))


def fit_gaussian_mixture(
    x: torch.Tensor,
    components: int,
    *,
    covariance: Covariance = "diagonal",
    iterations: int = 200,
    restarts: int = 1,
    tolerance: float = 1e-6,
    min_variance: float = 1e-6,
    seed: int = 0,
) -> MixtureFit:
    """Maximum-likelihood Gaussian mixture by exact EM from `restarts` random starts (means at
    random points); keeps the start with the highest final log-likelihood. `covariance` is
    "diagonal" (D variances per component) or "full" (a D x D covariance matrix per component).

    Each start runs until the mean log-likelihood rises by less than `tolerance` nats per point
    in an iteration, or for `iterations` iterations.
    """
    _check_points(x, components)
    _check_covariance(covariance)
    if iterations < 1 or restarts < 1:
        raise ValueError("iterations and restarts must be positive.")
    generator = torch.Generator().manual_seed(seed)
    best: tuple[DiagonalGaussianMixture | GaussianMixture, list[float]] | None = None
    finals = []
    for _ in range(restarts):
        mixture = _random_start(x, components, generator, covariance)
        log_joint = mixture.log_joint(x)  # once per iteration: the trace and the E-step share it
        trace = [torch.logsumexp(log_joint, dim=1).mean().item()]
        for _ in range(iterations):
            mixture = mixture_m_step(x, torch.softmax(log_joint, dim=1), min_variance, covariance)
            log_joint = mixture.log_joint(x)
            trace.append(torch.logsumexp(log_joint, dim=1).mean().item())
            if trace[-1] - trace[-2] < tolerance:
                break
        finals.append(trace[-1])
        if best is None or trace[-1] > best[1][-1]:
            best = (mixture, trace)
    return MixtureFit(best[0], best[1], finals)

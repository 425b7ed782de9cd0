"""Exact EM for a Gaussian mixture with diagonal covariances, in any number of dimensions.

Model: y ~ Cat(weights), x | y ~ N(means[y], diag(variances[y])). Chapter 1 derives EM for the
one-dimensional mixture: the E-step's q(y | x) is the exact posterior (the "responsibilities"),
the M-step's weighted averages are the exact maximizers, and the log-likelihood never falls.
The Gaussian-mixture VAE chapter uses this to start its prior p(z | y) from a mixture fitted to
the codes of a pretrained VAE (the VaDE initialization).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .densities import gaussian_log_density


@dataclass(frozen=True)
class DiagonalGaussianMixture:
    weights: torch.Tensor  # p(y), [C]
    means: torch.Tensor  # [C, D]
    variances: torch.Tensor  # [C, D]

    def log_joint(self, x: torch.Tensor) -> torch.Tensor:
        """log p(x, y) for every point and component, shape [N, C]."""
        return self.weights.log() + gaussian_log_density(
            x[:, None, :], self.means, self.variances.log()
        )

    def log_likelihood(self, x: torch.Tensor) -> torch.Tensor:
        """log p(x) = log sum_y p(x, y), shape [N]."""
        return torch.logsumexp(self.log_joint(x), dim=1)

    def responsibilities(self, x: torch.Tensor) -> torch.Tensor:
        """p(y | x), shape [N, C]: the E-step's optimal q."""
        return torch.softmax(self.log_joint(x), dim=1)


@dataclass(frozen=True)
class MixtureFit:
    mixture: DiagonalGaussianMixture
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


def mixture_m_step(
    x: torch.Tensor, q: torch.Tensor, min_variance: float = 1e-6
) -> DiagonalGaussianMixture:
    """The parameters that maximize sum_n E_{q_n}[log p(x_n, y)]: weighted counts, means and
    variances. min_variance keeps a component that shrinks onto one point from collapsing."""
    counts = q.sum(0)  # [C]
    safe = counts.clamp(min=torch.finfo(x.dtype).tiny)
    means = (q.T @ x) / safe[:, None]
    variances = (q.T @ x**2) / safe[:, None] - means**2
    return DiagonalGaussianMixture(counts / len(x), means, variances.clamp(min=min_variance))


def _random_start(
    x: torch.Tensor, components: int, generator: torch.Generator
) -> DiagonalGaussianMixture:
    # Means at distinct random points, every component with the data's variance, equal weights.
    means = x[torch.randperm(len(x), generator=generator)[:components]]
    variances = x.var(0, unbiased=False).clamp(min=1e-6).expand(components, -1)
    return DiagonalGaussianMixture(torch.full((components,), 1 / components, dtype=x.dtype),
                                   means.clone(), variances.clone())


def fit_gaussian_mixture(
    x: torch.Tensor,
    components: int,
    *,
    iterations: int = 200,
    restarts: int = 1,
    tolerance: float = 1e-6,
    min_variance: float = 1e-6,
    seed: int = 0,
) -> MixtureFit:
    """Maximum-likelihood diagonal Gaussian mixture by exact EM from `restarts` random starts
    (means at random points); keeps the start with the highest final log-likelihood.

    Each start runs until the mean log-likelihood rises by less than `tolerance` nats per point
    in an iteration, or for `iterations` iterations.
    """
    _check_points(x, components)
    if iterations < 1 or restarts < 1:
        raise ValueError("iterations and restarts must be positive.")
    generator = torch.Generator().manual_seed(seed)
    best: tuple[DiagonalGaussianMixture, list[float]] | None = None
    finals = []
    for _ in range(restarts):
        mixture = _random_start(x, components, generator)
        trace = [mixture.log_likelihood(x).mean().item()]
        for _ in range(iterations):
            mixture = mixture_m_step(x, mixture.responsibilities(x), min_variance)
            trace.append(mixture.log_likelihood(x).mean().item())
            if trace[-1] - trace[-2] < tolerance:
                break
        finals.append(trace[-1])
        if best is None or trace[-1] > best[1][-1]:
            best = (mixture, trace)
    return MixtureFit(best[0], best[1], finals)

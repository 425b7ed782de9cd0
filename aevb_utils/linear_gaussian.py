"""Exact answers for the linear-Gaussian (factor-analysis) model, used to check AEVB.

Model: z ~ N(0, I_L), x | z ~ N(W z + mean, diag(psi)). Everything about it is Gaussian, so
the evidence p(x) = N(x; mean, W W^T + diag(psi)) and the posterior p(z | x) are known exactly:

    p(z | x) = N(S W^T diag(psi)^-1 (x - mean), S),   S = (I + W^T diag(psi)^-1 W)^-1.
"""

from __future__ import annotations

import torch
from torch.distributions import MultivariateNormal


def _mean_or_zero(mean: torch.Tensor | None, W: torch.Tensor) -> torch.Tensor:
    return torch.zeros(W.shape[0], dtype=W.dtype, device=W.device) if mean is None else mean


def marginal_covariance(W: torch.Tensor, psi: torch.Tensor) -> torch.Tensor:
    """Cov[x] = W W^T + diag(psi)."""
    return W @ W.T + torch.diag(psi)


def log_evidence(
    x: torch.Tensor, W: torch.Tensor, psi: torch.Tensor, mean: torch.Tensor | None = None
) -> torch.Tensor:
    """log p(x) for each row of x, shape [N]."""
    mean = _mean_or_zero(mean, W)
    return MultivariateNormal(mean, marginal_covariance(W, psi)).log_prob(x)


def posterior(
    x: torch.Tensor, W: torch.Tensor, psi: torch.Tensor, mean: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """The exact posterior p(z | x): its means, shape [N, L], and its covariance S, shape [L, L]
    (the same for every x)."""
    mean = _mean_or_zero(mean, W)
    precision = torch.eye(W.shape[1], dtype=W.dtype, device=W.device) + W.T @ (W / psi[:, None])
    S = torch.linalg.inv(precision)
    means = (x - mean) / psi @ W @ S  # S symmetric: (S W^T Psi^-1 (x - mean))^T
    return means, S


def kl_mvn(
    mean_q: torch.Tensor, cov_q: torch.Tensor, mean_p: torch.Tensor, cov_p: torch.Tensor
) -> torch.Tensor:
    """KL(N(mean_q, cov_q) ‖ N(mean_p, cov_p)) for full covariances; broadcasts over rows of the
    means (shape [N, L]) with covariances [L, L] or [N, L, L]. Returns shape [N]."""
    return torch.distributions.kl_divergence(
        MultivariateNormal(mean_q, cov_q), MultivariateNormal(mean_p, cov_p)
    )

"""Log-densities and KL divergences that the models' ELBO estimators are built from.

Each function sums over the last (data or latent) dimension and returns one value per example.
Chapter 4 derives them; the model chapters import them rather than write them again.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch.distributions import MultivariateNormal

LOG_2PI = math.log(2 * math.pi)


def gaussian_log_density(
    x: torch.Tensor, mean: torch.Tensor, log_var: torch.Tensor
) -> torch.Tensor:
    """log N(x; mean, diag(exp(log_var))), summed over the last dimension."""
    return -0.5 * (LOG_2PI + log_var + (x - mean) ** 2 / log_var.exp()).sum(-1)


def standard_normal_log_density(z: torch.Tensor) -> torch.Tensor:
    """log N(z; 0, I), summed over the last dimension: the prior of most models in the book."""
    return -0.5 * (LOG_2PI + z**2).sum(-1)


def gaussian_entropy(log_var: torch.Tensor) -> torch.Tensor:
    """Entropy of N(m, diag exp(log_var)), summed over the last dimension."""
    return 0.5 * (log_var + 1 + LOG_2PI).sum(-1)


def bernoulli_log_likelihood(logits: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """log Bernoulli(x; sigmoid(logits)), summed over the last dimension (stable in logits).

    x broadcasts against logits, e.g. images [N, D] against logits [S, N, D] from S samples of z.
    """
    x = x.expand_as(logits)
    return -F.binary_cross_entropy_with_logits(logits, x, reduction="none").sum(-1)


def kl_gaussians(
    mean_q: torch.Tensor, log_var_q: torch.Tensor, mean_p: torch.Tensor, log_var_p: torch.Tensor
) -> torch.Tensor:
    """KL(N(mean_q, diag var_q) ‖ N(mean_p, diag var_p)), closed form, summed over the last dim."""
    ratio = (log_var_q - log_var_p).exp()
    return 0.5 * (
        ratio + (mean_q - mean_p) ** 2 / log_var_p.exp() - 1 - (log_var_q - log_var_p)
    ).sum(-1)


def kl_mvn(
    mean_q: torch.Tensor, cov_q: torch.Tensor, mean_p: torch.Tensor, cov_p: torch.Tensor
) -> torch.Tensor:
    """KL(N(mean_q, cov_q) ‖ N(mean_p, cov_p)) for full covariances; broadcasts over rows of the
    means (shape [N, L]) with covariances [L, L] or [N, L, L]. Returns shape [N]."""
    return torch.distributions.kl_divergence(
        MultivariateNormal(mean_q, cov_q), MultivariateNormal(mean_p, cov_p)
    )


def kl_diagonal_to_full(
    mean_q: torch.Tensor, log_var_q: torch.Tensor, mean_p: torch.Tensor, scale_tril_p: torch.Tensor
) -> torch.Tensor:
    """KL(N(mean_q, diag var_q) ‖ N(mean_p, L Lᵀ)) in closed form, with L = scale_tril_p lower
    triangular with a positive diagonal; broadcasts like the means ([..., L] against [..., L, L]).

    With A = L⁻¹ and d the dimension:
    ½ [Σ_j var_q,j ‖A e_j‖² + ‖A (mean_q - mean_p)‖² - d + 2 Σ_j log L_jj - Σ_j log var_q,j].
    """
    eye = torch.eye(scale_tril_p.shape[-1], dtype=scale_tril_p.dtype, device=scale_tril_p.device)
    inverse = torch.linalg.solve_triangular(scale_tril_p, eye, upper=False)  # A = L⁻¹
    trace = (log_var_q.exp() * (inverse**2).sum(-2)).sum(-1)  # tr(Σ_p⁻¹ diag var_q)
    whitened = (inverse @ (mean_q - mean_p).unsqueeze(-1)).squeeze(-1)
    log_det_p = 2 * torch.diagonal(scale_tril_p, dim1=-2, dim2=-1).log().sum(-1)
    return 0.5 * (trace + (whitened**2).sum(-1) - mean_q.shape[-1] + log_det_p - log_var_q.sum(-1))


def kl_standard_normal(mean: torch.Tensor, log_var: torch.Tensor) -> torch.Tensor:
    """KL(N(mean, diag exp(log_var)) ‖ N(0, I)) in closed form, summed over the last dimension."""
    return 0.5 * (log_var.exp() + mean**2 - 1 - log_var).sum(-1)


def reparameterize(
    mean: torch.Tensor, log_var: torch.Tensor, num_samples: int | None = None
) -> torch.Tensor:
    """z = mean + std * eps with eps ~ N(0, I): a sample whose gradient flows to mean and log_var.

    With `num_samples`, draws that many samples along a new leading dimension.
    """
    shape = mean.shape if num_samples is None else (num_samples, *mean.shape)
    return mean + (0.5 * log_var).exp() * torch.randn(shape, device=mean.device, dtype=mean.dtype)

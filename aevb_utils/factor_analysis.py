"""Factor analysis, the one model of the book whose every answer is known in closed form.

Model: z ~ N(0, I_L), x | z ~ N(W z + mean, diag(psi)). The evidence is
p(x) = N(x; mean, W W^T + diag(psi)) and the posterior is Gaussian,

    p(z | x) = N(S W^T diag(psi)^-1 (x - mean), S),   S = (I + W^T diag(psi)^-1 W)^-1,

so EM runs exactly and the ELBO of any Gaussian q is a formula: chapters 2 and 5 check AEVB
against these answers. Also the tutorial's synthetic data.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch.distributions import MultivariateNormal

from .densities import gaussian_log_density, kl_mvn

# The tutorial's generating model: three observed dimensions, two latent factors.
PAPER_W = ((-0.5, -1.0), (-1.0, -1.0), (2.0, 0.5))
PAPER_NOISE_STD = (0.4, 0.2, 0.3)


class FactorAnalysisSample(NamedTuple):
    x: torch.Tensor  # observations, [n, D]
    z: torch.Tensor  # the latent factors that produced them, [n, L]


def factor_analysis_data(
    n: int,
    W: torch.Tensor | tuple = PAPER_W,
    noise_std: torch.Tensor | tuple = PAPER_NOISE_STD,
    mean: torch.Tensor | tuple | None = None,
    seed: int = 0,
) -> FactorAnalysisSample:
    """Draw z ~ N(0, I_L) and x = W z + mean + noise_std * eps, eps ~ N(0, I_D)."""
    W = torch.as_tensor(W, dtype=torch.float32)  # float32 whatever the default dtype, so a
    noise_std = torch.as_tensor(noise_std, dtype=torch.float32)  # seed gives the same data
    if W.ndim != 2 or noise_std.shape != (W.shape[0],):
        raise ValueError(
            f"W must be [D, L] and noise_std [D]; got W {tuple(W.shape)}, "
            f"noise_std {tuple(noise_std.shape)}."
        )
    if n < 1 or bool((noise_std <= 0).any()):
        raise ValueError("n must be positive and every noise standard deviation above 0.")
    mu = torch.zeros(W.shape[0]) if mean is None else torch.as_tensor(mean)
    mu = mu.to(W.dtype)
    generator = torch.Generator().manual_seed(seed)
    z = torch.randn(n, W.shape[1], generator=generator, dtype=W.dtype)
    eps = torch.randn(n, W.shape[0], generator=generator, dtype=W.dtype)
    return FactorAnalysisSample(z @ W.T + mu + eps * noise_std, z)


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


def em_step(
    W: torch.Tensor, psi: torch.Tensor, second_moment: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """One EM iteration for a zero-mean model, from the data's second moments
    C = (1/N) sum_n x_n x_n^T: the exact posteriors, then the (W, psi) that maximize the ELBO.

        m_n = A x_n, A = S W^T Psi^-1;   W' = (1/N sum x_n m_n^T) (S + 1/N sum m_n m_n^T)^-1;
        psi' = diag(C - W' (1/N sum m_n x_n^T)).
    """
    S = torch.linalg.inv(torch.eye(W.shape[1], dtype=W.dtype) + W.T @ (W / psi[:, None]))
    A = S @ W.T / psi  # posterior mean map: m_n = A x_n
    mean_x_m = second_moment @ A.T  # (1/N) sum x_n m_n^T
    mean_zz = S + A @ second_moment @ A.T  # (1/N) sum (S + m_n m_n^T)
    W_new = mean_x_m @ torch.linalg.inv(mean_zz)
    psi_new = torch.diagonal(second_moment - W_new @ mean_x_m.T).clone()
    return W_new, psi_new


def gaussian_q_elbo(
    x: torch.Tensor, W: torch.Tensor, psi: torch.Tensor, mean_q: torch.Tensor, cov_q: torch.Tensor
) -> torch.Tensor:
    """The exact ELBO of q(z | x_n) = N(mean_q[n], cov_q) under the zero-mean model, shape [N]:

        E_q[log p(x | z)] = log N(x; W m, Psi) - 1/2 tr(Psi^-1 W C W^T),
        ELBO = E_q[log p(x | z)] - KL(q ‖ N(0, I)).

    cov_q is one covariance [L, L] for every example or one per example [N, L, L].
    """
    spread = torch.einsum("dk,...kl,dl->...d", W, cov_q, W)  # diagonal of W C W^T
    expected_log_likelihood = gaussian_log_density(x, mean_q @ W.T, psi.log()) - 0.5 * (
        spread / psi
    ).sum(-1)
    zero = torch.zeros_like(mean_q)
    identity = torch.eye(W.shape[1], dtype=W.dtype, device=W.device)
    return expected_log_likelihood - kl_mvn(mean_q, cov_q, zero, identity)

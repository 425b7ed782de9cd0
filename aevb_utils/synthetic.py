"""Synthetic data from a factor-analysis model, as in the tutorial's experiments."""

from __future__ import annotations

from typing import NamedTuple

import torch

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

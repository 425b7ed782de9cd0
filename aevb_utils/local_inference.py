"""Non-amortized variational inference: one diagonal Gaussian q(z) per example, fitted by
gradient ascent on its ELBO with the model held fixed (the approximate E-step of chapter 2).

Used to measure how far an encoder is from the best Gaussian it could have output (the
amortization gap of chapter 3 and of the VAE chapter).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from .densities import gaussian_entropy, reparameterize

LogJoint = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


@dataclass
class LocalGaussians:
    """Per-example variational parameters and the ELBO estimate after every step."""

    mean: torch.Tensor  # [N, L]
    log_var: torch.Tensor  # [N, L]
    elbo_trace: list[float]  # average ELBO estimate over examples, one per step


def local_elbo(
    log_joint: LogJoint,
    x: torch.Tensor,
    mean: torch.Tensor,
    log_var: torch.Tensor,
    num_samples: int = 1,
) -> torch.Tensor:
    """ELBO of q = N(mean, diag exp(log_var)) for each example: a reparameterized Monte-Carlo
    estimate of E_q[log p(x, z)] plus the entropy of q in closed form. Shape [N]."""
    z = reparameterize(mean, log_var, num_samples)  # [S, N, L]
    log_p = log_joint(x, z)
    if log_p.shape != (num_samples, mean.shape[0]):
        raise ValueError(
            f"log_joint(x, z) must return log p(x, z) for each sample and example, shape "
            f"[num_samples, N] = [{num_samples}, {mean.shape[0]}]; got {tuple(log_p.shape)}. "
            f"Sum over data and latent dimensions, not over samples or examples."
        )
    return log_p.mean(0) + gaussian_entropy(log_var)


def fit_local_gaussians(
    log_joint: LogJoint,
    x: torch.Tensor,
    init_mean: torch.Tensor,
    init_log_var: torch.Tensor | None = None,
    *,
    steps: int,
    lr: float = 1e-2,
    num_samples: int = 1,
    seed: int = 0,
) -> LocalGaussians:
    """Maximize each example's ELBO over its own Gaussian q by Adam, the model fixed.

    log_joint(x, z): log p(x, z) for z of shape [S, N, L] and x of shape [N, ...], shape [S, N];
    it must not change the model's parameters (they get no optimizer here).
    The examples do not interact, so one Adam on the sum of their ELBOs is N separate ascents.
    """
    torch.manual_seed(seed)
    mean = init_mean.detach().clone().requires_grad_(True)
    log_var = torch.zeros_like(mean) if init_log_var is None else init_log_var.detach().clone()
    log_var.requires_grad_(True)
    optimizer = torch.optim.Adam([mean, log_var], lr=lr)
    trace = []
    for _ in range(steps):
        elbo = local_elbo(log_joint, x, mean, log_var, num_samples)
        if not torch.isfinite(elbo).all():
            raise FloatingPointError("a per-example ELBO became non-finite; lower lr.")
        optimizer.zero_grad(set_to_none=True)
        (-elbo.sum()).backward()
        optimizer.step()
        trace.append(elbo.mean().item())
    return LocalGaussians(mean.detach(), log_var.detach(), trace)

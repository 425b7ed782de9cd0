"""Small building blocks for encoders and decoders."""

from __future__ import annotations

import torch


def mlp(*sizes: int, activation: type[torch.nn.Module] = torch.nn.Tanh) -> torch.nn.Sequential:
    """A fully connected network with the given layer sizes and `activation` between layers."""
    layers: list[torch.nn.Module] = []
    for i, (d_in, d_out) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
        layers.append(torch.nn.Linear(d_in, d_out))
        if i < len(sizes) - 2:
            layers.append(activation())
    return torch.nn.Sequential(*layers)


@torch.no_grad()
def bernoulli_means(decoder: torch.nn.Module, z: torch.Tensor) -> torch.Tensor:
    """The pixel probabilities sigmoid(f(z)) that a Bernoulli decoder puts on each pixel: what
    the book draws for a sample, rather than one noisy binary image."""
    return torch.sigmoid(decoder(z))

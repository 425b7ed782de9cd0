"""Data plumbing shared by training and evaluation: a data set is a tensor, or a tuple of
tensors indexed by example (images, labels, ...), and every batch passes all of them on."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import torch

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


def batches_in_order(
    data: Data, batch_size: int, device: torch.device
) -> Iterator[list[torch.Tensor]]:
    """Consecutive batches of every tensor of `data` (the last one may be smaller), on `device`."""
    tensors = as_tensors(data)
    for start in range(0, tensors[0].shape[0], batch_size):
        yield [t[start : start + batch_size].to(device) for t in tensors]


def shuffled_batch_indices(
    n: int, batch_size: int, generator: torch.Generator
) -> Iterator[torch.Tensor]:
    """Endless mini-batch indices; a fresh shuffle every epoch, every batch full-sized."""
    while True:
        order = torch.randperm(n, generator=generator)
        for start in range(0, n - batch_size + 1, batch_size):
            yield order[start : start + batch_size]


def random_subset(data: Data, size: int, seed: int) -> torch.Tensor | tuple[torch.Tensor, ...]:
    """`size` examples of `data` drawn at random without replacement (never the first rows:
    some files, like the binarized MNIST test set, are ordered by digit); same type as `data`."""
    tensors = as_tensors(data)
    n = tensors[0].shape[0]
    if not 1 <= size <= n:
        raise ValueError(f"size must be between 1 and the number of examples ({n:,}); got {size}.")
    index = torch.randperm(n, generator=torch.Generator().manual_seed(seed))[:size]
    picked = tuple(t[index] for t in tensors)
    return picked[0] if isinstance(data, torch.Tensor) else picked

"""Network building blocks (aevb_utils.networks)."""

from __future__ import annotations

import torch

from aevb_utils.networks import mlp


def test_mlp_layers():
    net = mlp(5, 8, 7, 3)
    kinds = [type(layer) for layer in net]
    assert kinds == [
        torch.nn.Linear,
        torch.nn.Tanh,
        torch.nn.Linear,
        torch.nn.Tanh,
        torch.nn.Linear,
    ]
    linears = [layer for layer in net if isinstance(layer, torch.nn.Linear)]
    assert [(lin.in_features, lin.out_features) for lin in linears] == [(5, 8), (8, 7), (7, 3)]
    assert net(torch.zeros(4, 5)).shape == (4, 3)


def test_mlp_single_layer_has_no_activation():
    net = mlp(4, 2)
    assert len(net) == 1 and isinstance(net[0], torch.nn.Linear)
    x = torch.randn(3, 4, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(net(x), x @ net[0].weight.T + net[0].bias)


def test_mlp_activation_and_output_is_not_squashed():
    net = mlp(2, 6, 1, activation=torch.nn.ReLU)
    assert isinstance(net[1], torch.nn.ReLU)
    assert sum(isinstance(layer, torch.nn.ReLU) for layer in net) == 1
    with torch.no_grad():
        net[2].bias.fill_(-100.0)
    assert (net(torch.randn(10, 2)) < -50).all()  # the last layer is linear


def test_mlp_trains():
    torch.manual_seed(0)
    net = mlp(1, 16, 1)
    x = torch.linspace(-1, 1, 64)[:, None]
    y = x**2
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-2)
    start = ((net(x) - y) ** 2).mean().item()
    for _ in range(150):
        optimizer.zero_grad()
        loss = ((net(x) - y) ** 2).mean()
        loss.backward()
        optimizer.step()
    assert loss.item() < 0.1 * start

"""Shared fixtures: isolated data folders, tiny fixture data files and a local HTTP server.

No test touches the real data in ../shared/data or the network beyond 127.0.0.1.
"""

from __future__ import annotations

import gzip
import hashlib
import http.server
import os
import threading
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import matplotlib
import numpy as np
import pytest
import torch

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402

# The tests use tiny tensors, for which one thread is fastest; on a loaded machine (CI runners,
# shared cores) several threads that wait on each other make them many times slower.
torch.set_num_threads(1)

PROXY_VARIABLES = ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "all_proxy")


# --- file writers --------------------------------------------------------------------------------


def idx_bytes(array: np.ndarray) -> bytes:
    """The raw (uncompressed) IDX encoding of a uint8 array."""
    array = np.ascontiguousarray(array, dtype=np.uint8)
    header = bytes([0, 0, 0x08, array.ndim])
    header += b"".join(int(n).to_bytes(4, "big") for n in array.shape)
    return header + array.tobytes()


def write_idx(path: Path, array: np.ndarray) -> Path:
    """Write `array` as a gzipped IDX file of unsigned bytes."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(gzip.compress(idx_bytes(array)))
    return path


def amat_bytes(array: np.ndarray, newline: str = "\n") -> bytes:
    """The .amat text of a 0/1 array: one row a line, values separated by spaces."""
    return "".join(" ".join(str(int(v)) for v in row) + newline for row in array).encode()


def write_amat(path: Path, array: np.ndarray, newline: str = "\n") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(amat_bytes(array, newline))
    return path


def md5_of(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def tiny_mnist(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """`n` random 28x28 uint8 'images' and digit labels."""
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
    labels = rng.integers(0, 10, size=n, dtype=np.uint8)
    return images, labels


def tiny_binarized(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 2, size=(n, 784), dtype=np.uint8)


# --- environment ---------------------------------------------------------------------------------


@dataclass
class DataEnv:
    data: Path  # AEVB_DATA_DIR
    cache: Path  # AEVB_CACHE_DIR


@pytest.fixture
def data_env(tmp_path, monkeypatch) -> DataEnv:
    """AEVB_DATA_DIR and AEVB_CACHE_DIR in tmp_path, downloads switched off, no proxies."""
    env = DataEnv(tmp_path / "data", tmp_path / "cache")
    env.data.mkdir()
    monkeypatch.setenv("AEVB_DATA_DIR", str(env.data))
    monkeypatch.setenv("AEVB_CACHE_DIR", str(env.cache))
    monkeypatch.setenv("AEVB_OFFLINE", "1")
    for name in PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    return env


@pytest.fixture
def online(data_env, monkeypatch) -> DataEnv:
    """Like data_env, but downloads allowed (from the local server only) and no data folder."""
    monkeypatch.setenv("AEVB_OFFLINE", "0")
    monkeypatch.delenv("AEVB_DATA_DIR")
    return data_env


# --- local HTTP server ---------------------------------------------------------------------------


@dataclass
class FileServer:
    """Serves `files` (URL path -> bytes) on 127.0.0.1 and counts the requests per path."""

    base: str = ""
    files: dict[str, bytes] = field(default_factory=dict)
    requests: Counter = field(default_factory=Counter)

    def url(self, path: str) -> str:
        return self.base + path

    @property
    def total(self) -> int:
        return sum(self.requests.values())


@pytest.fixture
def server():
    state = FileServer()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 (the http.server API)
            path = self.path.lstrip("/")
            state.requests[path] += 1
            body = state.files.get(path)
            if body is None:
                self.send_error(404)
                return
            self.send_response(200)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, args=(0.02,), daemon=True)
    thread.start()
    state.base = f"http://127.0.0.1:{httpd.server_address[1]}/"
    try:
        yield state
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)


# --- global state --------------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def _restore_global_state():
    """Tests may change torch's thread count and open figures; put things back afterwards."""
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)
    plt.close("all")


def part_files(folder: Path) -> list[Path]:
    """Temporary download files left anywhere under `folder`."""
    return [
        Path(root) / name
        for root, _, names in os.walk(folder)
        for name in names
        if name.endswith(".part")
    ]


# --- a tiny model with tractable evidence --------------------------------------------------------


class LinearGaussianVAE(torch.nn.Module):
    """z ~ N(0, I_L), x | z ~ N(W z, diag(psi)), with the encoder q(z | x) = N(A x + b, diag v).

    `elbo(x)` is the one-sample ELBO estimate log p(x, z) - log q(z | x) and
    `log_importance_weights(x, num_samples)` the [K, N] log weights; `log_evidence(x)` is exact.
    """

    def __init__(self, W, psi, A, b, log_var):
        super().__init__()
        as_parameter = lambda t: torch.nn.Parameter(torch.as_tensor(t, dtype=torch.float64))  # noqa: E731
        self.W = as_parameter(W)
        self.log_psi = as_parameter(torch.as_tensor(psi, dtype=torch.float64).log())
        self.A = as_parameter(A)
        self.b = as_parameter(b)
        self.log_var = as_parameter(log_var)

    @classmethod
    def random(cls, D: int, L: int, seed: int = 0) -> LinearGaussianVAE:
        g = torch.Generator().manual_seed(seed)
        return cls(
            0.5 * torch.randn(D, L, generator=g, dtype=torch.float64),
            torch.ones(D, dtype=torch.float64),
            0.1 * torch.randn(L, D, generator=g, dtype=torch.float64),
            torch.zeros(L, dtype=torch.float64),
            torch.zeros(L, dtype=torch.float64),
        )

    @property
    def psi(self) -> torch.Tensor:
        return self.log_psi.exp()

    def encode(self, x):
        mean = x @ self.A.T + self.b
        return mean, self.log_var.expand_as(mean)

    def log_joint(self, x, z):
        from aevb_utils.densities import gaussian_log_density

        zeros = torch.zeros_like(z)
        prior = gaussian_log_density(z, zeros, zeros)
        return prior + gaussian_log_density(x, z @ self.W.T, self.log_psi)

    def log_importance_weights(self, x, num_samples):
        from aevb_utils.densities import gaussian_log_density, reparameterize

        mean, log_var = self.encode(x)
        z = reparameterize(mean, log_var, num_samples)  # [K, N, L]
        return self.log_joint(x, z) - gaussian_log_density(z, mean, log_var)

    def elbo(self, x):
        return self.log_importance_weights(x, 1)[0]

    @torch.no_grad()
    def log_evidence(self, x):
        from aevb_utils.factor_analysis import log_evidence

        return log_evidence(x, self.W, self.psi)

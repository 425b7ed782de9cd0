"""Finding, downloading and verifying data files, and caching their parsed arrays.

Look-up order for a data file: the folder named by AEVB_DATA_DIR, then the local cache
(AEVB_CACHE_DIR, default ~/.cache/aevb-book); if it is in neither, it is downloaded into the
cache, verified, and only then moved into place, so a half-written file is never used.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .runtime import env_flag

DATA_DIR_VARIABLE = "AEVB_DATA_DIR"
CACHE_DIR_VARIABLE = "AEVB_CACHE_DIR"
OFFLINE_VARIABLE = "AEVB_OFFLINE"


class DataNotFoundError(FileNotFoundError):
    """A data file is in none of the folders looked in and could not be downloaded."""


class CorruptDataError(ValueError):
    """A data file exists but is truncated, corrupt, of the wrong shape or fails its checksum."""


def data_dir() -> Path | None:
    """The folder named by AEVB_DATA_DIR, if set."""
    value = os.environ.get(DATA_DIR_VARIABLE)
    return Path(value).expanduser() if value else None


def cache_dir() -> Path:
    """Where downloads and parsed arrays are kept (AEVB_CACHE_DIR, default ~/.cache/aevb-book)."""
    value = os.environ.get(CACHE_DIR_VARIABLE)
    return Path(value).expanduser() if value else Path.home() / ".cache" / "aevb-book"


def offline() -> bool:
    """AEVB_OFFLINE=1 forbids downloads (CI and offline machines)."""
    return env_flag(OFFLINE_VARIABLE)


def md5sum(path: Path) -> str:
    digest = hashlib.md5()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _fetch(
    url: str,
    destination: Path,
    md5: str | None,
    timeout: float,
    validate: Callable[[Path], object] | None = None,
) -> None:
    """Download `url` to a temporary file beside `destination`, check it, then rename it."""
    destination.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(
        prefix=destination.name + ".", suffix=".part", dir=destination.parent
    )
    tmp = Path(tmp_name)
    try:
        digest = hashlib.md5()
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=timeout) as response:
            for block in iter(lambda: response.read(1 << 20), b""):
                out.write(block)
                digest.update(block)
        if md5 is not None and digest.hexdigest() != md5:
            raise CorruptDataError(
                f"checksum mismatch for {url}: md5 {digest.hexdigest()}, expected {md5}"
            )
        if validate is not None:
            try:
                validate(tmp)
            except CorruptDataError as error:
                raise CorruptDataError(
                    f"the file downloaded from {url} is not valid: {error}"
                ) from error
        tmp.chmod(0o644)  # mkstemp creates owner-only files; data files are for every user
        os.replace(tmp, destination)  # atomic: the final name only ever holds a complete file
    finally:
        tmp.unlink(missing_ok=True)


def local_folders(subfolder: str) -> list[Path]:
    """The folders a data file is looked for in, in order: AEVB_DATA_DIR's `subfolder`, then
    AEVB_DATA_DIR itself, then the cache's `subfolder`."""
    folders = []
    if data_dir() is not None:
        folders += [data_dir() / subfolder, data_dir()]
    folders.append(cache_dir() / subfolder)
    return folders


@dataclass(frozen=True)
class DataFile:
    """A data file a loader uses: where it goes, where it comes from, and how it is checked."""

    name: str
    subfolder: str  # under AEVB_DATA_DIR and the cache: "mnist", "binarized_mnist"
    urls: tuple[str, ...]  # tried in order
    md5: str | None = None  # the published checksum, where there is one
    validate: Callable[[Path], object] | None = None  # raises CorruptDataError

    def locate(self) -> Path:
        """The file's path, downloaded and verified if it is in no local folder (`locate`)."""
        return locate(self.name, self.subfolder, self.urls, self.md5, self.validate)


def locate(
    name: str,
    subfolder: str,
    urls: Sequence[str],
    md5: str | None = None,
    validate: Callable[[Path], object] | None = None,
    timeout: float = 60.0,
) -> Path:
    """Return the path of data file `name`, downloading and verifying it if needed.

    `urls` are tried in order. A downloaded file must match `md5` (when given) and pass
    `validate` (which raises CorruptDataError) before it is moved into the cache.
    """
    folders = local_folders(subfolder)
    cached = cache_dir() / subfolder
    for folder in folders:
        if (folder / name).is_file():
            return folder / name

    errors = []
    if offline():
        errors.append(f"downloads are switched off ({OFFLINE_VARIABLE}=1)")
    else:
        for url in urls:
            try:
                _fetch(url, cached / name, md5, timeout, validate)
                return cached / name
            except CorruptDataError as error:
                errors.append(str(error))
            except (OSError, urllib.error.URLError) as error:
                errors.append(f"{url}: {error}")
    looked_in = "\n".join(f"  - {folder}" for folder in folders)
    tried = "\n".join(f"  - {url}" for url in urls)
    why = "\n".join(f"  - {error}" for error in errors)
    raise DataNotFoundError(
        f"data file {name!r} was not found and could not be downloaded.\n"
        f"Looked in:\n{looked_in}\nDownload sources:\n{tried}\nWhat went wrong:\n{why}\n"
        f"Fix: connect to the internet and run again, or download the file yourself and "
        f"put it in a folder named by {DATA_DIR_VARIABLE} (e.g. "
        f"{DATA_DIR_VARIABLE}=/path/to/data with the file at /path/to/data/{subfolder}/{name})."
    )


def origin(path: Path) -> str:
    """Where a located file came from, in words that name no folder of this machine
    (printed pages must not show the build machine's paths)."""
    folder = data_dir()
    if folder is not None and path.resolve().is_relative_to(folder.resolve()):
        return f"{path.name} in {DATA_DIR_VARIABLE}"
    return f"{path.name} in the download cache ({CACHE_DIR_VARIABLE})"


def cached_array(source: Path, tag: str, parse: Callable[[Path], np.ndarray]) -> np.ndarray:
    """`parse(source)`, remembered as a .npy file keyed by the source's path, size and mtime.

    The .npy form is read without pickle, so a cache file can never run code.
    """
    stat = source.stat()
    key = hashlib.sha1(f"{source.resolve()}|{stat.st_size}|{stat.st_mtime_ns}".encode()).hexdigest()
    target = cache_dir() / "arrays" / f"{tag}-{key[:16]}.npy"
    if target.is_file():
        try:
            return np.load(target, allow_pickle=False)
        except (OSError, ValueError, EOFError):  # EOFError: an empty file
            target.unlink(missing_ok=True)  # a damaged cache entry is rebuilt, never trusted
    array = parse(source)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(suffix=".npy.part", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as out:
            np.save(out, array, allow_pickle=False)
        os.replace(tmp_name, target)
    finally:
        Path(tmp_name).unlink(missing_ok=True)
    return array

"""`python -m aevb_utils fetch DIR`: every data file of every chapter in one folder, verified.

For a lab without internet: run it once on a machine with internet, copy DIR to every machine,
and set `AEVB_DATA_DIR=DIR AEVB_OFFLINE=1` there. The files and their checks are the loaders'
own (`aevb_utils.mnist.data_files`): the published md5 sums of MNIST, and the IDX headers and
the rows of binarized MNIST.

For each file, in order:

1. a copy already in DIR that passes the checks is kept;
2. otherwise a copy in the loaders' folders (AEVB_DATA_DIR, then the download cache) is copied;
3. otherwise the file is downloaded (unless AEVB_OFFLINE=1).

A copy is written beside its final name and renamed only once verified, so DIR never holds a
half-written file. A file that passes the loaders' checks but not the published checksum (a
subset, say) is an error unless `--accept-unofficial` is given; it is then reported as such.
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import urllib.error
from dataclasses import dataclass
from pathlib import Path

from .files import (
    OFFLINE_VARIABLE,
    CorruptDataError,
    DataFile,
    _fetch,
    local_folders,
    md5sum,
    offline,
)
from .mnist import data_files


@dataclass
class Fetched:
    """What `fetch` did for one file."""

    file: DataFile
    path: Path
    how: str  # "kept", "copied" or "downloaded"
    official: bool  # matches the published checksum (None-checksum files: passed their checks)
    note: str = ""


class FetchError(RuntimeError):
    """A data file could not be put in the folder, verified."""


def _verify(path: Path, file: DataFile, accept_unofficial: bool) -> tuple[bool, str]:
    """Check `path` as the loaders do; (official?, note). Raises CorruptDataError if unusable."""
    if file.validate is not None:
        file.validate(path)
    if file.md5 is None:
        return True, "checked row by row (no published checksum)"
    found = md5sum(path)
    if found == file.md5:
        return True, "md5 matches the published file"
    if not accept_unofficial:
        raise CorruptDataError(
            f"readable, but not the published file (md5 {found}, published {file.md5}); "
            f"pass --accept-unofficial to use it anyway (e.g. a subset)"
        )
    return False, f"NOT the published file (md5 {found}, published {file.md5}); accepted"


def _copy_verified(source: Path, target: Path, file: DataFile, accept: bool) -> tuple[bool, str]:
    """Copy `source` to a temporary name beside `target`, verify the copy, then rename it."""
    fd, tmp_name = tempfile.mkstemp(prefix=target.name + ".", suffix=".part", dir=target.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        shutil.copyfile(source, tmp)
        verdict = _verify(tmp, file, accept)
        tmp.chmod(0o644)
        os.replace(tmp, target)
        return verdict
    finally:
        tmp.unlink(missing_ok=True)


def fetch_one(file: DataFile, folder: Path, accept_unofficial: bool = False) -> Fetched:
    """Put `file` into `folder/<subfolder>/`, verified; raise FetchError saying why not."""
    target = folder / file.subfolder / file.name
    target.parent.mkdir(parents=True, exist_ok=True)
    problems = []
    if target.is_file():
        try:
            return Fetched(file, target, "kept", *_verify(target, file, accept_unofficial))
        except CorruptDataError as error:
            problems.append(f"the copy already in {target.parent} fails its checks: {error}")
    for source_folder in local_folders(file.subfolder):
        source = source_folder / file.name
        if not source.is_file() or source.resolve() == target.resolve():
            continue
        try:
            verdict = _copy_verified(source, target, file, accept_unofficial)
            return Fetched(file, target, f"copied from {source_folder}", *verdict)
        except CorruptDataError as error:
            problems.append(f"{source}: {error}")
    if offline():
        problems.append(f"downloads are switched off ({OFFLINE_VARIABLE}=1)")
    else:
        for url in file.urls:
            try:
                _fetch(url, target, file.md5, timeout=120.0, validate=file.validate)
                return Fetched(file, target, f"downloaded from {url}", True,
                               "md5 matches the published file" if file.md5 else
                               "checked row by row (no published checksum)")
            except CorruptDataError as error:
                problems.append(str(error))
            except (OSError, urllib.error.URLError) as error:
                problems.append(f"{url}: {error}")
    raise FetchError(f"{file.subfolder}/{file.name}:\n" + "\n".join(f"  - {p}" for p in problems))


def fetch(folder: Path, accept_unofficial: bool = False) -> list[Fetched | FetchError]:
    """Every data file into `folder`: for each, what was done or why it failed."""
    results: list[Fetched | FetchError] = []
    for file in data_files():
        try:
            results.append(fetch_one(file, folder, accept_unofficial))
        except FetchError as error:
            results.append(error)
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m aevb_utils fetch",
        description="Download (or copy from AEVB_DATA_DIR) and verify every data file of every "
        "chapter into DIR, for AEVB_DATA_DIR=DIR AEVB_OFFLINE=1 on machines without internet.",
    )
    parser.add_argument("folder", type=Path, metavar="DIR", help="the data folder to fill")
    parser.add_argument(
        "--accept-unofficial",
        action="store_true",
        help="keep files that pass the loaders' checks but not the published md5 (a subset)",
    )
    args = parser.parse_args(argv)
    results = fetch(args.folder.expanduser(), args.accept_unofficial)
    for item in results:
        if isinstance(item, FetchError):
            print(f"FAIL {item}")
            continue
        size = item.path.stat().st_size
        shown = f"{size / 1e6:,.1f} MB" if size >= 100_000 else f"{size / 1e3:,.1f} kB"
        print(f"ok   {item.file.subfolder}/{item.file.name} ({shown}): {item.how}; "
              f"{item.note}")
    done = [item for item in results if isinstance(item, Fetched)]
    unofficial = sum(not item.official for item in done)
    failed = len(results) - len(done)
    print(f"{len(done)} of {len(results)} data files verified in {args.folder}"
          + (f" ({unofficial} accepted though not the published files)" if unofficial else "")
          + (f"; {failed} failed." if failed else
             f". Use them with AEVB_DATA_DIR={args.folder} AEVB_OFFLINE=1."))
    return 1 if failed else 0

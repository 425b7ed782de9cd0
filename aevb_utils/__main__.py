"""`python -m aevb_utils fetch DIR`: the data of every chapter in one folder (see `fetch`)."""

from __future__ import annotations

import sys

COMMANDS = ("fetch",)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] not in COMMANDS:
        print("usage: python -m aevb_utils fetch DIR [--accept-unofficial]\n"
              "  fetch: download (or copy from AEVB_DATA_DIR) and verify every data file of "
              "every chapter into DIR", file=sys.stderr)
        return 2
    from .fetch import main as fetch_main

    return fetch_main(argv[1:])


if __name__ == "__main__":
    sys.exit(main())

"""``python -m tokenmeter``: the ``tokenmeter`` command (see docs/cli.md)."""

from __future__ import annotations

import sys

from tokenmeter.cli import main

if __name__ == "__main__":
    sys.exit(main())

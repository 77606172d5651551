"""``python -m detector.sigma DIR...``: the table of docs/sigma.md for the rules at DIR.

Imports: the standard library and this package.
"""

from __future__ import annotations

import asyncio
import sys

from detector.sigma._load import load_rules
from detector.sigma._report import rules_table

if __name__ == "__main__":
    print(rules_table(asyncio.run(load_rules(sys.argv[1:]))))

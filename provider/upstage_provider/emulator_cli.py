"""The ``upstage-emulator`` command's entry point.

It lives outside ``upstage_provider.emulator`` because that package refuses to import without the
``[emulator]`` extra: from here the refusal is one line on stderr and exit status 2, not a traceback.
"""

from __future__ import annotations

import sys


def main() -> int:
    try:
        from upstage_provider.emulator.cli import main as run
    except ImportError as exc:
        print(f"upstage-emulator: {exc}", file=sys.stderr)
        return 2
    return run()

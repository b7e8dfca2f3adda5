"""``python -m upstage_provider.emulator``: the same as the ``upstage-emulator`` command."""

from __future__ import annotations

import sys

from upstage_provider.emulator.cli import main

if __name__ == "__main__":
    sys.exit(main())

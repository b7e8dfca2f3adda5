"""Per-module counts of a `make mutation` run, read from mutmut's result files.

    python scripts/mutation_summary.py build/mutation 'upstage_provider.models.*' ...

Counts only the mutants matching the patterns (the ones `make mutation` runs), per source file:
killed, survived, timeouts, not run, and the kill rate killed / (killed + survived + timeouts).
``--survivors`` also lists the surviving mutants (``mutmut show NAME`` in the run folder shows one).
"""

from __future__ import annotations

import argparse
import collections
import fnmatch
import json
from pathlib import Path

# mutmut 3's exit codes (mutmut/stats.py); anything else counts as "other".
STATUS = {0: "survived", 1: "killed", 3: "killed", 37: "killed", None: "not run", 5: "no tests"}
STATUS[33] = "no tests"
STATUS.update({24: "timeout", 36: "timeout", 152: "timeout", 255: "timeout"})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", type=Path, help="the folder mutmut ran in (holds mutants/)")
    parser.add_argument("patterns", nargs="+", help="mutant name patterns, as given to mutmut run")
    parser.add_argument("--survivors", action="store_true", help="list surviving mutants too")
    args = parser.parse_args()
    for meta in sorted((args.run_dir / "mutants").rglob("*.py.meta")):
        codes = json.loads(meta.read_text())["exit_code_by_key"]
        picked = {k: v for k, v in codes.items() if any(fnmatch.fnmatch(k, p) for p in args.patterns)}
        if not picked:
            continue
        counts = collections.Counter(STATUS.get(v, "other") for v in picked.values())
        judged = counts["killed"] + counts["survived"] + counts["timeout"]
        rate = f"{counts['killed'] / judged:.1%}" if judged else "n/a"
        shown = ", ".join(f"{k} {n}" for k, n in sorted(counts.items()))
        print(f"{meta.name.removesuffix('.py.meta'):12} {len(picked):5} mutants: {shown}; kill rate {rate}")
        if args.survivors:
            for name, code in sorted(picked.items()):
                if STATUS.get(code) in ("survived", "timeout"):
                    print(f"    {STATUS[code]:8} {name}")


if __name__ == "__main__":
    main()

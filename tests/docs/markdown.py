"""Reading the Markdown docs the way a reader does: fenced code blocks and table rows, by file."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
DOCS = REPO / "docs"

_FENCE = re.compile(r"^(?P<indent>\s*)(?P<fence>`{3,})(?P<info>[^`]*)$")


@dataclass(frozen=True)
class CodeBlock:
    """One fenced block: its language (the info string's first word), text, and where it starts."""

    path: Path
    line: int
    language: str
    text: str

    @property
    def where(self) -> str:
        return f"{self.path.relative_to(REPO)}:{self.line}"

    @property
    def first_line(self) -> str:
        return self.text.split("\n", 1)[0].strip()


def code_blocks(path: Path, language: str | None = None) -> list[CodeBlock]:
    """The fenced code blocks of a Markdown file, dedented by their fence's indent."""
    lines = path.read_text(encoding="utf-8").split("\n")
    blocks: list[CodeBlock] = []
    i = 0
    while i < len(lines):
        opening = _FENCE.match(lines[i])
        if opening is None:
            i += 1
            continue
        indent, fence = opening["indent"], opening["fence"]
        info = opening["info"].strip()
        end = i + 1
        while end < len(lines) and not lines[end].strip().startswith(fence):
            end += 1
        if end == len(lines):
            raise AssertionError(f"{path}:{i + 1}: code block never closed")
        body = [line[len(indent) :] if line.startswith(indent) else line for line in lines[i + 1 : end]]
        lang = info.split()[0] if info else ""
        if language is None or lang == language:
            blocks.append(CodeBlock(path, i + 1, lang, "\n".join(body) + "\n"))
        i = end + 1
    return blocks


def named_block(path: Path, file_name: str) -> CodeBlock:
    """The one block whose first line is the comment ``# <file_name>``: the file a page tells you to save."""
    found = [b for b in code_blocks(path) if b.first_line == f"# {file_name}"]
    assert len(found) == 1, f"{path.name}: {len(found)} blocks start with '# {file_name}'"
    return found[0]


def table_rows(path: Path) -> list[list[str]]:
    """Every Markdown table row of the file (outside code blocks), split into stripped cells."""
    in_code: list[CodeBlock] = code_blocks(path)
    code_lines = {n for b in in_code for n in range(b.line, b.line + b.text.count("\n") + 2)}
    rows = []
    for number, line in enumerate(path.read_text(encoding="utf-8").split("\n"), start=1):
        if number in code_lines or not line.startswith("|"):
            continue
        cells = [c.strip() for c in re.split(r"(?<!\\)\|", line.strip())[1:-1]]
        if cells and not all(set(c) <= set("-: ") for c in cells):
            rows.append(cells)
    return rows


def markdown_files() -> list[Path]:
    """The README and every page of the docs site."""
    return [REPO / "README.md", *sorted(DOCS.glob("*.md"))]

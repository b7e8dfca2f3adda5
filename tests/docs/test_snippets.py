"""The Python in README.md and docs/*.md: every block compiles, every import resolves, and the
README's hook example and the Parquet page's writing example run against the emulator.

The README's DAG example is run with ``dag.test()`` by
``tests/integration/test_dags.py::test_the_readme_snippet_runs_and_a_bad_file_fails_only_its_own_chain``;
the quickstart's by ``tests/docs/test_quickstart.py``. Blocks that are not Python (signatures,
return values) are fenced as ``text``, so a ``python`` block that does not compile is a mistake.
"""

from __future__ import annotations

import ast
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.docs.markdown import DOCS, REPO, CodeBlock, code_blocks, markdown_files
from tests.emulator_fixtures import pdf_bytes
from upstage_provider.emulator.server import EmulatorServer

BLOCKS = [block for path in markdown_files() for block in code_blocks(path, "python")]


def block_at(path: Path, starting: str) -> CodeBlock:
    (found,) = [b for b in code_blocks(path, "python") if b.text.startswith(starting)]
    return found


def substituted(block: CodeBlock, replacements: dict[str, str]) -> str:
    """The block with example paths swapped for real ones; each one must be in the block."""
    text = block.text
    for old, new in replacements.items():
        assert old in text, f"{block.where}: {old!r} is no longer in the example"
        text = text.replace(old, new)
    return text


def test_there_are_blocks_in_the_readme_and_the_docs() -> None:
    files = {b.path.name for b in BLOCKS}
    assert {"README.md", "parquet.md", "lakehouse.md", "quickstart.md"} <= files


@pytest.mark.parametrize("block", BLOCKS, ids=lambda b: b.where)
def test_the_block_compiles(block: CodeBlock) -> None:
    compile(block.text, block.where, "exec")


@pytest.mark.parametrize("block", BLOCKS, ids=lambda b: b.where)
def test_the_blocks_imports_resolve(block: CodeBlock) -> None:
    """A renamed or moved name breaks the example's first line: run the block's imports alone."""
    tree = ast.parse(block.text, block.where)
    imports = [node for node in ast.walk(tree) if isinstance(node, (ast.Import, ast.ImportFrom))]
    module = ast.Module(body=imports, type_ignores=[])
    exec(compile(module, block.where, "exec"), {})  # noqa: S102 - the docs' own import lines


def test_the_readme_hook_example_runs(
    emulator: EmulatorServer, connect: Callable[..., str], tmp_path: Path
) -> None:
    connect(emulator.url, conn_id="upstage_default")
    files = {}
    for name, pages in (("scan.pdf", 2), ("big-scan.pdf", 12), ("archive.pdf", 3)):
        files[name] = tmp_path / name
        files[name].write_bytes(pdf_bytes(pages))
    example = substituted(
        block_at(
            REPO / "README.md", "import time\n\nfrom upstage_provider.hooks.upstage import UpstageOCRHook"
        ),
        {
            '"/data/scan.pdf"': repr(str(files["scan.pdf"])),
            '"s3://bucket/big-scan.pdf"': repr(str(files["big-scan.pdf"])),
            '"s3://bucket/archive.pdf"': repr(str(files["archive.pdf"])),
            "time.sleep(5)": "time.sleep(0.05)",
        },
    )
    printed: list[tuple[Any, ...]] = []
    namespace: dict[str, Any] = {"print": lambda *args: printed.append(args)}  # what the example prints
    exec(compile(example, "README.md (hook example)", "exec"), namespace)  # noqa: S102

    pages = [args[0] for args in printed]
    assert pages == [1, 2, *range(1, 13)]  # the sync document's pages, then the async one's in order
    assert namespace["info"].is_terminal
    assert len(namespace["parts"]) == 1  # 3 pages: one part
    assert emulator.stats()["submissions"] == 2
    namespace["hook"].close()


def test_the_parquet_pages_writing_example_runs(
    emulator: EmulatorServer, connect: Callable[..., str], tmp_path: Path
) -> None:
    from upstage_provider.documents import load_document
    from upstage_provider.hooks.upstage import UpstageOCRHook

    scan = tmp_path / "scan.pdf"
    scan.write_bytes(pdf_bytes(2))
    hook = UpstageOCRHook(connect(emulator.url))
    try:
        results = [hook.ocr(scan)]
    finally:
        hook.close()
    lake = tmp_path / "lake" / "ocr"
    example = substituted(
        block_at(DOCS / "parquet.md", "from upstage_provider.parquet import DocumentMeta, write_ocr_parquet"),
        {'"s3://lake/ocr"': repr(str(lake)), '"s3://inbox/scan.pdf"': repr(str(scan))},
    )
    namespace: dict[str, Any] = {"results": results, "sha": load_document(scan).sha256, "rid": None}
    exec(compile(example, "docs/parquet.md (writing example)", "exec"), namespace)  # noqa: S102

    summary = namespace["summary"]
    assert summary.words_uri.startswith(str(lake / "words" / "ds=2026-11-24" / "scan-"))
    assert Path(summary.words_uri).is_file()
    assert summary.pages == 2

"""``UpstageOCRHook.submit_parts``: a document of any length as one async request per part."""

from __future__ import annotations

from collections.abc import Callable

from tests.emulator_fixtures import pdf_bytes as make_pdf
from upstage_provider.emulator.server import EmulatorServer
from upstage_provider.hooks.upstage import UpstageOCRHook


def test_submit_parts_sends_one_request_per_part_with_its_document_pages(
    emulator: EmulatorServer, connect: Callable[..., str]
) -> None:
    hook = UpstageOCRHook(connect(emulator.url))
    parts = hook.submit_parts(make_pdf(1200), name="long.pdf")
    assert [(p.part, p.parts, p.first_page, p.page_count) for p in parts] == [
        (1, 2, 1, 1000),
        (2, 2, 1001, 200),
    ]
    assert parts[1].label == "part 2/2 (pages 1001-1200) of long.pdf"
    assert parts[1].document_uri == "long.pdf#pages=1001-1200"
    assert emulator.stats()["submissions"] == 2
    assert all(hook.get_request(p.request_id).id == p.request_id for p in parts)


def test_submit_parts_of_a_short_document_is_one_plain_request(
    emulator: EmulatorServer, connect: Callable[..., str]
) -> None:
    hook = UpstageOCRHook(connect(emulator.url))
    (part,) = hook.submit_parts(make_pdf(3), name="short.pdf")
    assert (part.part, part.parts, part.first_page, part.page_count) == (1, 1, 1, 3)
    assert part.document_uri == "short.pdf"

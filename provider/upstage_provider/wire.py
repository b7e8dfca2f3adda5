"""The rules of Upstage's OCR wire format, stated once for every parser of it. No Airflow.

``models.parse_ocr_response`` (JSON into dataclasses, the reference) and ``columnar`` (JSON into
Arrow columns) read the same responses; each takes its keys, limits and decisions from here, so
the two cannot drift apart.

Shapes accepted:

* recorded: camelCase ``boundingBox``/``modelVersion``/``apiVersion``/``numBilledPages``, integer
  pixel vertices, page ``width``/``height`` (falling back to ``metadata.pages[]`` when a page lacks
  them);
* documented: snake_case ``bounding_box``, vertices already normalized to 0..1, ``model``, ``api``,
  ``usage.pages``, pages possibly without a size.

Pixels or normalized, decided per page (the API never says which), by :func:`is_pixel_page`:

* any coordinate above ``1 + EDGE_TOLERANCE`` can only be a pixel, so the page is in pixels;
* a page with a known size whose coordinates are all JSON integers is in pixels too (normalized
  floats are never all integers unless every word spans the whole page);
* otherwise the coordinates are already normalized and are kept as given;
* pixels on a page whose size is known neither from the page nor from ``metadata`` are an error:
  there is nothing to normalize them by.

Clamping: after normalization a coordinate up to ``EDGE_TOLERANCE`` (2% of the page's width or
height) outside [0, 1] is clamped onto the edge; OCR engines draw boxes a few pixels past the page
border. Anything further out is an error naming the page and the word: it means the coordinates and
the page size do not belong together.

Page numbers: the payload's pages, sorted by ``id`` when every page has a distinct one and kept in
list order otherwise (:func:`document_order`), are document pages ``start_page``,
``start_page + 1``, ... Whether an async batch numbers its pages from 0 (batch-relative) or by their
place in the document (absolute) is not known, so either is accepted, but the ids must be one of
the two: every id present lies in ``0..n-1`` or every one in ``start_page-1..end_page-1``
(:func:`check_page_ids`). Ids outside both mean the response holds other pages (another batch's
download, most likely), an error. A sync response starts at page 1, where the two numberings are
the same. Pages without ids are placed by list order and checked by their count only.

Texts: a page without ``text`` reads as its words joined by spaces; a response without ``text`` as
its page texts concatenated, as the API writes it.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Mapping, Sequence
from typing import Any, Literal

from upstage_provider.exceptions import BatchPagesMismatchError, MalformedResponseError

__all__ = [
    "API_KEYS",
    "BILLED_PAGES_KEY",
    "BOX_KEYS",
    "COORD_LIMIT",
    "EDGE_TOLERANCE",
    "HIGH",
    "LOW",
    "MAX_WORD_ID",
    "MODEL_KEYS",
    "USAGE_KEY",
    "USAGE_PAGES_KEY",
    "PageIds",
    "check_page_ids",
    "check_span",
    "clamp",
    "decode",
    "document_order",
    "document_text",
    "error_body",
    "is_coordinate",
    "is_dimension",
    "is_pixel_page",
    "is_unit",
    "is_word_id",
    "keys",
    "kind",
    "metadata_first_page",
    "page_text",
    "show",
    "span",
    "within_tolerance",
]

#: How a response's page ids count: from 0 in every batch, or by the page's place in the document.
PageIds = Literal["relative", "absolute"]

#: How far (as a fraction of the page's width or height) a box may stick out before it is an error.
EDGE_TOLERANCE = 0.02

#: Beyond any real pixel coordinate (pages are at most 200 million pixels); also rejects NaN and
#: inf in the same comparison, and keeps huge JSON integers away from float conversion.
COORD_LIMIT = 1e9
#: Word ids end up in an int64 column.
MAX_WORD_ID = 2**63
LOW = -EDGE_TOLERANCE
HIGH = 1.0 + EDGE_TOLERANCE

#: A word's box, in the recorded spelling first; a word has one or the other.
BOX_KEYS = ("boundingBox", "bounding_box")
#: Optional strings of a response, each under its recorded key first, then the documented one.
MODEL_KEYS = ("modelVersion", "model")
API_KEYS = ("apiVersion", "api")
#: Billed pages: ``numBilledPages`` (recorded), else ``usage.pages`` (documented).
BILLED_PAGES_KEY = "numBilledPages"
USAGE_KEY = "usage"
USAGE_PAGES_KEY = "pages"


def is_unit(value: Any) -> bool:
    """A confidence the API may send: a JSON number (not a boolean) in [0, 1]. None is absent."""
    kind = type(value)
    return (kind is float or kind is int) and 0.0 <= value <= 1.0


def is_dimension(value: float) -> bool:
    """A page width or height in pixels, once known to be whole."""
    return 0 < value < COORD_LIMIT


def is_coordinate(value: Any) -> bool:
    """A vertex coordinate: a JSON number (not a boolean), finite and within any real page."""
    kind = type(value)
    return (kind is int or kind is float) and -COORD_LIMIT < value < COORD_LIMIT


def is_word_id(value: Any) -> bool:
    return type(value) is int and 0 <= value < MAX_WORD_ID


def is_pixel_page(highest: float, all_integers: bool, sized: bool) -> bool:
    """Whether a page's coordinates are pixels, from its largest one and whether all are integers.

    ``all_integers`` means written as JSON integers; ``sized``, that the page's size is known.
    """
    return highest > HIGH or (all_integers and sized)


def within_tolerance(value: float) -> bool:
    """A normalized coordinate close enough to the page to be clamped onto it."""
    return LOW <= value <= HIGH


def clamp(value: float) -> float:
    return min(max(value, 0.0), 1.0)


def document_order(ids: Sequence[int | None]) -> list[int]:
    """Positions of the pages in document order: by id when every page has a distinct one."""
    positions = list(range(len(ids)))
    present = [page_id for page_id in ids if page_id is not None]
    if len(present) == len(ids) and len(set(present)) == len(present):
        positions.sort(key=present.__getitem__)
    return positions


def metadata_first_page(numbers: Collection[int]) -> int:
    """Which ``metadata.pages[].page`` number the payload's first page has.

    They are 1-based and, in an async batch, may count from 1 or from the batch's first page:
    numbering that contains page 1 is taken as relative, any other as absolute.
    """
    return 1 if 1 in numbers else min(numbers)


def page_text(word_texts: Sequence[str]) -> str:
    """A page's text when the page has none."""
    return " ".join(word_texts)


def document_text(page_texts: Sequence[str]) -> str:
    """A response's text when it has none: the API concatenates page texts as they are."""
    return "".join(page_texts)


def decode(payload: Mapping[str, Any] | bytes | str, source: str) -> Mapping[str, Any]:
    """A response as a JSON object; anything else is a :class:`MalformedResponseError`."""
    if isinstance(payload, (bytes, bytearray, memoryview, str)):
        raw = bytes(payload) if isinstance(payload, memoryview) else payload
        try:
            payload = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise MalformedResponseError(
                f"{source}: not valid JSON: {exc.msg} at line {exc.lineno} "
                f"column {exc.colno} (char {exc.pos})"
            ) from None
        except (ValueError, RecursionError) as exc:  # bad UTF-8, integers too long, absurd nesting
            raise MalformedResponseError(f"{source}: not valid JSON: {exc}") from None
    if not isinstance(payload, Mapping):
        raise MalformedResponseError(f"{source}: expected a JSON object, got {kind(payload)}")
    return payload


def check_span(start_page: int, end_page: int | None) -> None:
    """The document pages a caller says a response holds: 1-based, inclusive, in order."""
    if type(start_page) is not int or start_page < 1:
        raise ValueError(f"start_page must be an integer >= 1, got {start_page!r}")
    if end_page is not None and (type(end_page) is not int or end_page < start_page):
        raise ValueError(f"end_page must be an integer >= start_page ({start_page}), got {end_page!r}")


def error_body(payload: Mapping[str, Any]) -> str | None:
    """What an API error body (a payload without ``pages``) says, worded for a message; None if not one."""
    error = payload.get("error")
    message: object = None
    details: list[str] = []
    if isinstance(error, Mapping):
        message = error.get("message")
        details = [f"{key} {show(error[key])}" for key in ("type", "code") if error.get(key) is not None]
    elif error is not None:
        message = error
    elif "message" in payload and "code" in payload:
        message = payload["message"]
        details = [f"code {show(payload['code'])}"]
    elif "detail" in payload:
        message = payload["detail"]
    else:
        return None
    extra = f" ({', '.join(details)})" if details else ""
    shown = "(no message)" if message is None else show(message, 300)
    return f"is an error response, not an OCR result: {shown}{extra}"


def check_page_ids(
    lowest: int | None, highest: int | None, *, page_count: int, start_page: int, source: str
) -> PageIds | None:
    """Which numbering a response's page ids use, from the lowest and highest id present.

    Every id present must lie in ``0..page_count-1`` (batch-relative) or every one in
    ``start_page-1..start_page+page_count-2`` (absolute); anything else raises
    :class:`BatchPagesMismatchError`. Returns None when there are no ids, or when they fit both (a
    batch from page 1). Both parsers call this, the columnar one with its id column's min and max.
    """
    if lowest is None or highest is None:
        return None
    end_page = start_page + page_count - 1
    relative = lowest >= 0 and highest <= page_count - 1
    absolute = start_page - 1 <= lowest and highest <= end_page - 1
    if relative and absolute:
        return None
    if relative:
        return "relative"
    if absolute:
        return "absolute"
    pages = f"{start_page}-{end_page}"
    got = span(lowest, highest)
    relative_ids = span(0, page_count - 1)
    if start_page == 1:
        problem = (
            f"page ids {got} do not match {relative_ids} "
            "(batch-relative and absolute ids agree for a batch from page 1)"
        )
    else:
        absolute_ids = span(start_page - 1, end_page - 1)
        problem = (
            f"page ids {got} match neither {relative_ids} (batch-relative) nor {absolute_ids} (absolute)"
        )
    raise BatchPagesMismatchError(
        f"{source} (pages {pages}): {problem}: the response holds other pages than {pages}"
    )


# --- how a wire value is named in an error message ------------------------------------------------


def kind(value: object) -> str:
    """What a JSON value is, for a message: ``null``, ``a list of 3``, ``a string ('x')`` ..."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return f"a boolean ({str(value).lower()})"
    if isinstance(value, Mapping):
        return "an object"
    if isinstance(value, (list, tuple)):
        return f"a list of {len(value)}"
    if isinstance(value, str):
        return f"a string ({show(value)})"
    if isinstance(value, (int, float)):
        return f"a number ({show(value)})"
    return type(value).__name__


def show(value: object, limit: int = 60) -> str:
    """A value for an error message, short enough never to dump a response into a log."""
    if value is None:
        return "absent or null"
    if isinstance(value, (Mapping, list, tuple)):
        return kind(value)
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) > 10**30:
        return f"an integer of {len(str(abs(value)))} digits"
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def span(low: int, high: int) -> str:
    """``3``, ``10-19``, ``-1 to 1``: a range of ids for a message."""
    if low == high:
        return show(low)
    return f"{show(low)}{'-' if low >= 0 else ' to '}{show(high)}"


def keys(payload: Mapping[str, Any]) -> str:
    """The first few keys of an object, for a message."""
    names = [str(key) for key in list(payload)[:8]]
    more = ", ..." if len(payload) > 8 else ""
    return ", ".join(names) + more if names else "none"

"""The provider's own OpenLineage facet: what one Upstage OCR run processed and billed.

Imports ``openlineage`` at the top: only :mod:`upstage_provider.lineage` imports this module, and
only inside functions, once it knows the OpenLineage provider is installed. The facet's JSON schema
is ``docs/lineage/UpstageOCRRunFacet.json`` in this repository.
"""

from __future__ import annotations

from typing import ClassVar

import attr
from openlineage.client.generated.base import RunFacet

#: The facet's JSON schema (``docs/lineage/UpstageOCRRunFacet.json``), version 1-0-0. The project
#: has no public home yet: the host is a reserved ``.invalid`` name until the schema is published.
UPSTAGE_OCR_RUN_FACET_SCHEMA = (
    "https://airflow-provider-upstage.invalid/spec/facets/1-0-0/UpstageOCRRunFacet.json"
    "#/$defs/UpstageOCRRunFacet"
)


@attr.define
class UpstageOCRRunFacet(RunFacet):
    """Pages and words an Upstage OCR run produced, the pages billed, the model that read them."""

    pages: int | None = attr.field(default=None)
    """Pages landed (or, for a submission, the document's pages when they can be counted)."""

    words: int | None = attr.field(default=None)
    """Word rows landed."""

    billedPages: int | None = attr.field(default=None)
    """Pages Upstage billed (``numBilledPages``); None when the API did not say."""

    modelVersion: str | None = attr.field(default=None)
    """The model version that answered, e.g. ``ocr-2.2.1``."""

    parts: int | None = attr.field(default=None)
    """Requests a document over the async limits was split into; None for one request."""

    estimatedCost: float | None = attr.field(default=None)
    """Billed pages times the connection's ``price_per_page``, when one is set."""

    _additional_skip_redact: ClassVar[list[str]] = [
        "pages",
        "words",
        "billedPages",
        "modelVersion",
        "parts",
        "estimatedCost",
    ]

    @staticmethod
    def _get_schema() -> str:
        return UPSTAGE_OCR_RUN_FACET_SCHEMA

"""Every error the provider raises is defined in one module, and the old import paths still work."""

from __future__ import annotations

import upstage_provider.documents as documents
import upstage_provider.exceptions as exceptions
import upstage_provider.parquet as parquet


def _subclasses(cls: type) -> set[type]:
    found = set()
    for sub in cls.__subclasses__():
        found |= {sub, *_subclasses(sub)}
    return found


def test_every_upstage_error_lives_in_the_exceptions_module() -> None:
    import upstage_provider.hooks.upstage
    import upstage_provider.ledger
    import upstage_provider.operators.ocr
    import upstage_provider.sensors.ocr  # noqa: F401

    outside = {c.__qualname__: c.__module__ for c in _subclasses(exceptions.UpstageError)}
    outside = {name: module for name, module in outside.items() if module != exceptions.__name__}
    assert outside == {}


def test_the_earlier_import_paths_name_the_same_classes() -> None:
    assert parquet.ParquetWriteError is exceptions.ParquetWriteError
    assert parquet.ParquetPairMismatchError is exceptions.ParquetPairMismatchError
    assert documents.DocumentSourceError is exceptions.DocumentSourceError

"""The troubleshooting page (docs/errors.md) has a row for every error class the provider defines.

The emulator (``upstage_provider.emulator``) is left out: it is a test server whose errors become
HTTP answers, never exceptions in a DAG. Private classes (``_Name``) never leave their module.
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil

import upstage_provider
from tests.docs.markdown import DOCS, table_rows
from upstage_provider.exceptions import UpstageError

PAGE = DOCS / "errors.md"


def provider_modules() -> list[str]:
    names = [upstage_provider.__name__]
    for module in pkgutil.walk_packages(upstage_provider.__path__, prefix=f"{upstage_provider.__name__}."):
        if not module.name.startswith(f"{upstage_provider.__name__}.emulator"):
            names.append(module.name)
    return names


def error_classes() -> dict[str, str]:
    """Every public exception class defined in the provider: name -> module."""
    found: dict[str, str] = {}
    for name in provider_modules():
        module = importlib.import_module(name)
        for cls_name, cls in vars(module).items():
            if (
                inspect.isclass(cls)
                and issubclass(cls, BaseException)
                and cls.__module__ == name
                and not cls_name.startswith("_")
            ):
                found[cls_name] = name
    return found


def listed_classes() -> dict[str, str]:
    """The page's class table: `Name` (first cell) -> the row."""
    listed = {}
    for cells in table_rows(PAGE):
        first = cells[0].split(" ", 1)[0]
        if first.startswith("`") and first.endswith("`") and len(cells) == 4:
            listed[first.strip("`")] = " | ".join(cells)
    return listed


def test_the_walk_finds_the_errors_outside_exceptions_py() -> None:
    """The module walk must reach the subpackages, or the next test would pass on too little."""
    found = error_classes()
    assert found["UpstageAuthError"] == "upstage_provider.exceptions"
    assert found["CommitConflictError"] == "upstage_provider.tables.commit"
    assert found["TableInputError"] == "upstage_provider.tables.schema"
    assert found["TransientFailure"] == "upstage_provider.retry"
    assert not [n for n, m in found.items() if ".emulator" in m]


def test_every_error_class_has_a_row_on_the_troubleshooting_page() -> None:
    listed = listed_classes()
    missing = sorted(set(error_classes()) - set(listed))
    assert not missing, f"{PAGE.name}: no row in 'Every error class' for {missing}"


def test_every_row_says_what_to_do_and_names_a_class_that_exists() -> None:
    found = error_classes()
    listed = listed_classes()
    assert sorted(set(listed) - set(found)) == []  # a renamed or removed class leaves a stale row
    for name, row in listed.items():
        cells = row.split(" | ")
        assert all(cells), f"{name}: an empty cell in {row!r}"
        if found[name] != "upstage_provider.exceptions":
            assert f"(`{found[name]}`)" in cells[0], f"{name}: the row must name its module {found[name]}"


def test_the_permanent_column_matches_the_classes() -> None:
    """ "yes" or "no" must be the class's own ``permanent``; bases and per-instance cases say so in words."""
    found = error_classes()
    for name, row in listed_classes().items():
        permanent = row.split(" | ")[1]
        cls = getattr(importlib.import_module(found[name]), name)
        if permanent in ("yes", "no") and issubclass(cls, UpstageError):
            assert (permanent == "yes") is cls.permanent, f"{name}: the page says permanent: {permanent}"

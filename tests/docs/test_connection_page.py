"""docs/connection.md states the connection's real defaults: read back from a hook, not from constants."""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest

from tests.docs.markdown import DOCS, table_rows
from upstage_provider.get_provider_info import DEFAULT_BASE_URL, get_provider_info
from upstage_provider.hooks import upstage as hook_module

PAGE = DOCS / "connection.md"


def documented_extras() -> dict[str, tuple[str, str]]:
    """The Extras table: name -> (default cell, description cell)."""
    extras = {}
    for cells in table_rows(PAGE):
        match = re.fullmatch(r"`(\w+)`", cells[0])
        if match and len(cells) == 3:
            extras[match[1]] = (cells[1].strip("`"), cells[2])
    return extras


@pytest.fixture
def bare_hook(connect: Callable[..., str]) -> hook_module.UpstageOCRHook:
    """A hook on a connection with a host and a key and no extras at all."""
    return hook_module.UpstageOCRHook(connect("http://127.0.0.1:9"))


def test_the_extras_table_lists_exactly_the_form_fields() -> None:
    (conn,) = get_provider_info()["connection-types"]
    assert set(documented_extras()) == set(conn["conn-fields"])


def test_the_documented_defaults_are_what_a_hook_without_extras_uses(
    bare_hook: hook_module.UpstageOCRHook,
) -> None:
    conn = bare_hook.connection
    policy = bare_hook._retry(conn)
    real = {
        "timeout": bare_hook._read_timeout(conn),
        "max_retries": policy.max_retries,
        "rate_limit_budget": policy.rate_limit_budget,
        "download_concurrency": bare_hook.download_concurrency,
        "price_per_page": bare_hook.price_per_page,
    }
    documented = {name: default for name, (default, _) in documented_extras().items()}
    assert set(documented) == set(real)
    for name, value in real.items():
        if value is None:
            assert documented[name] == "none", name
        else:
            said = documented[name]
            assert float(said) == value, f"{name}: the page says {said}, the hook uses {value}"


def test_the_numbers_in_the_descriptions_are_the_hooks(bare_hook: hook_module.UpstageOCRHook) -> None:
    extras = documented_extras()
    conn = bare_hook.connection
    sync_floor = bare_hook._read_timeout(conn, floor=hook_module.DEFAULT_SYNC_READ_TIMEOUT)
    assert f"at least {sync_floor:g} s" in extras["timeout"][1]
    assert f"connect timeout is {hook_module.DEFAULT_CONNECT_TIMEOUT:g} s" in extras["timeout"][1]
    policy = bare_hook._retry(conn)
    assert f"from {policy.backoff_base:g} s to {policy.backoff_max:g} s" in extras["max_retries"][1]


def test_the_fields_table_names_the_real_base_url_key_variable_and_labels() -> None:
    (conn,) = get_provider_info()["connection-types"]
    labels = conn["ui-field-behaviour"]["relabeling"]
    fields = {cells[0]: (cells[1], cells[2]) for cells in table_rows(PAGE) if len(cells) == 3}
    assert f"`{DEFAULT_BASE_URL}` when empty" in fields["Host"][1]
    assert f"`{hook_module.API_KEY_ENV}`" in fields["Password"][1]
    assert fields["Connection type"][0] == conn["hook-name"]
    for field in ("host", "password", "port"):
        assert fields[field.capitalize()][0] == labels[field], field


def test_the_quoted_failure_without_a_key_is_what_test_connection_returns(
    connect: Callable[..., str],
) -> None:
    """What the CLI and the UI show for a connection without a key (they print test_connection()'s text)."""
    hook = hook_module.UpstageOCRHook(connect("http://127.0.0.1:9", password=None, conn_id="upstage_default"))
    ok, reason = hook.test_connection()
    assert not ok
    text = " ".join(PAGE.read_text(encoding="utf-8").split())
    assert f"`{reason.removeprefix('Upstage API error: ')}`" in text

"""The provider metadata Airflow reads: every section an apache provider has, and the real defaults."""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable

from upstage_provider.get_provider_info import get_provider_info
from upstage_provider.hooks import upstage as hook_module


def test_hooks_operators_sensors_and_triggers_are_listed_and_import() -> None:
    info = get_provider_info()
    expected = {
        "hooks": "UpstageOCRHook",
        "operators": "UpstageOCRSubmitOperator",
        "sensors": "UpstageOCRSensor",
        "triggers": "UpstageOCRTrigger",
    }
    for section, cls in expected.items():
        (entry,) = info[section]
        assert entry["integration-name"] == info["integrations"][0]["integration-name"]
        modules = [importlib.import_module(m) for m in entry["python-modules"]]
        assert any(inspect.isclass(getattr(m, cls, None)) for m in modules), (section, cls)
    (operators,) = info["operators"]
    table = importlib.import_module("upstage_provider.operators.table")
    assert table.__name__ in operators["python-modules"]
    assert inspect.isclass(table.UpstageOCRTableOperator)


def test_the_connection_form_shows_the_defaults_the_hook_uses(connect: Callable[..., str]) -> None:
    """What a connection without extras gets is what the form says it gets."""
    (conn,) = get_provider_info()["connection-types"]
    fields = conn["conn-fields"]
    hook = hook_module.UpstageOCRHook(connect("http://127.0.0.1:9"))
    assert hook.download_concurrency == fields["download_concurrency"]["schema"]["default"]
    assert hook._read_timeout(hook.connection) == fields["timeout"]["schema"]["default"]
    assert hook._retry(hook.connection).attempts == fields["max_retries"]["schema"]["default"] + 1


def test_every_field_the_hook_reads_is_on_the_form() -> None:
    (conn,) = get_provider_info()["connection-types"]
    hidden = set(conn["ui-field-behaviour"]["hidden-fields"])
    read = {"host", "port", "password"}  # UpstageOCRHook._base_url and _key_of
    assert not read & hidden


def test_the_price_is_on_the_form_without_a_default(connect: Callable[..., str]) -> None:
    """A price is the user's contract's: the form offers the field, the provider never guesses one."""
    (conn,) = get_provider_info()["connection-types"]
    field = conn["conn-fields"]["price_per_page"]
    assert "default" not in field["schema"]
    assert field["schema"]["type"] == ["number", "null"]
    assert field["schema"]["minimum"] == 0
    assert "currency" in field["description"]
    assert hook_module.UpstageOCRHook(connect("http://127.0.0.1:9")).price_per_page is None
    with_price = connect("http://127.0.0.1:9", price_per_page=0.0015)
    assert hook_module.UpstageOCRHook(with_price).price_per_page == 0.0015

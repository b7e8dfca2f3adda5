"""The provider metadata Airflow reads: every section an apache provider has, and the real defaults."""

from __future__ import annotations

import importlib
import inspect

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


def test_the_connection_form_shows_the_defaults_the_hook_uses() -> None:
    (conn,) = get_provider_info()["connection-types"]
    fields = conn["conn-fields"]
    assert fields["timeout"]["schema"]["default"] == hook_module.DEFAULT_READ_TIMEOUT
    assert fields["max_retries"]["schema"]["default"] == hook_module.DEFAULT_MAX_RETRIES
    assert fields["download_concurrency"]["schema"]["default"] == hook_module.DEFAULT_DOWNLOAD_CONCURRENCY
    hook = hook_module.UpstageOCRHook()
    assert (hook._download_concurrency, hook._max_retries, hook._timeout) == (None, None, None)


def test_every_field_the_hook_reads_is_on_the_form() -> None:
    (conn,) = get_provider_info()["connection-types"]
    hidden = set(conn["ui-field-behaviour"]["hidden-fields"])
    read = {"host", "port", "password"}  # UpstageOCRHook._base_url and _key_of
    assert not read & hidden

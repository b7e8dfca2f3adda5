"""Every constructor parameter of every public operator, sensor, trigger and hook has a ``:param:`` line.

The reference page (docs/reference.md) is generated from these docstrings, so an undocumented
parameter is a parameter the docs site does not know about.
"""

from __future__ import annotations

import importlib
import inspect
import re

import pytest
from airflow.sdk import BaseHook, BaseOperator
from airflow.triggers.base import BaseTrigger

from tests.docs.markdown import DOCS
from upstage_provider.get_provider_info import get_provider_info

ROLES = ("hooks", "operators", "sensors", "triggers")
BASES = (BaseOperator, BaseHook, BaseTrigger)


def public_classes() -> list[type]:
    """The hooks, operators, sensors and triggers the provider registers with Airflow."""
    info = get_provider_info()
    found: list[type] = []
    for role in ROLES:
        for entry in info[role]:
            for name in entry["python-modules"]:
                module = importlib.import_module(name)
                found += [
                    cls
                    for cls_name, cls in vars(module).items()
                    if inspect.isclass(cls)
                    and cls.__module__ == module.__name__
                    and not cls_name.startswith("_")
                    and issubclass(cls, BASES)
                ]
    return found


def constructor_parameters(cls: type) -> list[str]:
    signature = inspect.signature(cls.__init__)
    return [
        p.name
        for p in signature.parameters.values()
        if p.name != "self" and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
    ]


def documented_parameters(cls: type) -> set[str]:
    text = (cls.__doc__ or "") + (cls.__init__.__doc__ or "")
    return set(re.findall(r":param (?:[\w\[\], |.]+ )?(\w+):", text))


def test_every_registered_role_has_classes() -> None:
    names = {cls.__name__ for cls in public_classes()}
    assert {
        "UpstageOCRHook",
        "UpstageOCRSubmitOperator",
        "UpstageOCROperator",
        "UpstageOCRTableOperator",
        "UpstageOCRSensor",
        "UpstageOCRTrigger",
    } <= names


@pytest.mark.parametrize("cls", public_classes(), ids=lambda cls: cls.__name__)
def test_every_constructor_parameter_is_documented(cls: type) -> None:
    missing = [p for p in constructor_parameters(cls) if p not in documented_parameters(cls)]
    assert not missing, f"{cls.__name__}: no ':param <name>:' line for {missing}"


@pytest.mark.parametrize("cls", public_classes(), ids=lambda cls: cls.__name__)
def test_every_class_is_on_the_reference_page(cls: type) -> None:
    page = (DOCS / "reference.md").read_text(encoding="utf-8")
    assert f"autoclass:: {cls.__module__}.{cls.__qualname__}\n" in page

"""The provider metadata Airflow reads: every section an apache provider has, and the real defaults."""

from __future__ import annotations

import importlib
import importlib.resources
import inspect
import json
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jsonschema
import trove_classifiers
from packaging.version import Version

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10: pytest's own TOML parser
    import tomli as tomllib  # type: ignore[no-redef]

import upstage_provider
from tests.airflow_runs import AIRFLOW_CORE
from upstage_provider.get_provider_info import DEFAULT_BASE_URL, PORT_LABEL, get_provider_info
from upstage_provider.hooks import upstage as hook_module

REPO = Path(__file__).resolve().parents[1]


def _pyproject() -> dict[str, Any]:
    return tomllib.loads((REPO / "pyproject.toml").read_text())


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


def test_airflow_accepts_the_provider_info() -> None:
    """Airflow validates every provider's info against this schema before any command runs."""
    schema_file = importlib.resources.files("airflow").joinpath("provider_info.schema.json")
    schema = json.loads(schema_file.read_text())
    jsonschema.validate(get_provider_info(), schema)


def test_one_version_for_the_distribution_and_airflow() -> None:
    project = _pyproject()
    assert "version" not in project["project"]
    assert "version" in project["project"]["dynamic"]
    assert project["tool"]["setuptools"]["dynamic"]["version"] == {"attr": "upstage_provider.__version__"}
    assert get_provider_info()["versions"] == [upstage_provider.__version__]
    assert str(Version(upstage_provider.__version__)) == upstage_provider.__version__  # normalized


def test_the_documentation_url_is_the_one_airflow_shows() -> None:
    """Airflow fills documentation-url from the metadata's Documentation URL: the two must agree."""
    urls = _pyproject()["project"]["urls"]
    assert get_provider_info()["documentation-url"] == urls["Documentation"]
    assert set(urls) >= {"Documentation", "Changelog", "Source"}
    assert all(url.startswith("https://") for url in urls.values())
    assert urls["Changelog"].startswith(urls["Source"] + "/")


def test_the_changelog_keeps_a_changelog() -> None:
    """An Unreleased section on top, and a link for every version heading."""
    text = (REPO / "CHANGELOG.md").read_text()
    headings = re.findall(r"^## \[([^\]]+)\]", text, flags=re.MULTILINE)
    assert headings[0] == "Unreleased"
    links = dict(re.findall(r"^\[([^\]]+)\]: (https://\S+)$", text, flags=re.MULTILINE))
    assert set(headings) <= set(links)
    assert all(link.startswith(_pyproject()["project"]["urls"]["Source"]) for link in links.values())
    for released in headings[1:]:
        assert Version(released) <= Version(upstage_provider.__version__), released


_FORM_PROBE = """
import json
from airflow.api_fastapi.core_api.services.ui.connections import HookMetaService
from upstage_provider.hooks.upstage import UpstageOCRHook
(meta,) = [m for m in HookMetaService.hook_meta_data() if m.connection_type == "upstage"]
print(json.dumps({
    "form": meta.model_dump(mode="json"),
    "hook_methods": sorted(
        name for name in ("get_ui_field_behaviour", "get_connection_form_widgets")
        if name in UpstageOCRHook.__dict__
    ),
}))
"""


def test_the_ui_gets_the_whole_connection_form_on_this_airflow_version() -> None:
    """What the UI's form is built from, in a fresh process as in the api-server: Airflow 3.2+
    reads the provider info, and the hook defines none of the methods it deprecated; Airflow 3.1
    reads only those methods, so there the hook's fallback must serve the same labels and fields."""
    done = subprocess.run(
        [sys.executable, "-W", "ignore", "-c", _FORM_PROBE], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-2000:]
    probe = json.loads(done.stdout.strip().splitlines()[-1])
    old = Version("3.2") > AIRFLOW_CORE
    assert probe["hook_methods"] == (["get_connection_form_widgets", "get_ui_field_behaviour"] if old else [])
    form = probe["form"]
    (conn,) = get_provider_info()["connection-types"]
    standard = form["standard_fields"]
    assert standard["host"]["title"] == "Base URL"
    assert standard["host"]["placeholder"] == DEFAULT_BASE_URL
    assert standard["password"]["title"] == "API key"
    assert standard["port"]["title"] == PORT_LABEL
    assert standard["login"]["hidden"]
    assert standard["url_schema"]["hidden"]
    assert not standard["host"]["hidden"]
    assert not standard["password"]["hidden"]
    extra = form["extra_fields"]
    assert set(extra) == set(conn["conn-fields"])
    for name, field in conn["conn-fields"].items():
        assert extra[name]["schema"]["title"] == field["label"], name
        default, served = field["schema"].get("default"), extra[name]["value"]
        assert served is None if default is None else float(served) == default, name


def _compat_matrix() -> list[tuple[str, str, str]]:
    """(entry, Python, Airflow requirement) of each line of scripts/compat.sh's MATRIX."""
    text = (REPO / "scripts" / "compat.sh").read_text()
    found = re.findall(r'^\s*"([\w.]+)\|(3\.\d+)\|apache-airflow==(3\.\d+)\.\*[^|]*\|', text, re.M)
    assert len(found) >= 2, "scripts/compat.sh's MATRIX not found"
    return found


def test_the_classifiers_are_pypi_s_and_name_each_tested_python() -> None:
    """PyPI refuses an upload with an unknown classifier, and a Python classifier is a claim: each
    names a Python the CI tests (3.11 by make test, the others by make test-compat), no more."""
    project = _pyproject()["project"]
    classifiers = project["classifiers"]
    unknown = sorted(set(classifiers) - set(trove_classifiers.classifiers))
    assert not unknown, f"not PyPI classifiers: {unknown}"
    tested = {"3.11"} | {python for _, python, _ in _compat_matrix()}
    prefix = "Programming Language :: Python :: 3."
    claimed = {c.removeprefix(prefix[:-2]) for c in classifiers if c.startswith(prefix)}
    assert claimed == tested
    lowest = min(tested, key=Version)
    assert project["requires-python"] == f">={lowest}"


def test_the_readme_table_lists_each_tested_airflow_and_python() -> None:
    """The README's "Supported versions" table names every matrix entry and the oldest Airflow minor
    is the dependency's lower bound."""
    readme = (REPO / "README.md").read_text()
    table = readme[readme.index("## Supported versions") :]
    table = table[: table.index("\n## ")]
    for entry, python, airflow in _compat_matrix():
        (row,) = [line for line in table.splitlines() if line.startswith(f"| `{entry}`")]
        assert f"Airflow {airflow}." in row, row
        assert f"Python {python}" in row, row
    minors = {airflow for _, _, airflow in _compat_matrix()}
    requirement = next(d for d in _pyproject()["project"]["dependencies"] if d.startswith("apache-airflow"))
    assert requirement == f"apache-airflow>={min(minors, key=Version)}.0"

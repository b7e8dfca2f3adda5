"""Provider metadata read by Airflow through the ``apache_airflow_provider`` entry point."""

from __future__ import annotations

from typing import Any

from upstage_provider import __version__

DEFAULT_BASE_URL = "https://api.upstage.ai"
# The connection's defaults live here, beside the form that shows them: the hook reads them too.
DEFAULT_READ_TIMEOUT = 60.0
DEFAULT_MAX_RETRIES = 5
#: Seconds a call keeps waiting while the API answers 429 (rate limited), from its first 429.
DEFAULT_RATE_LIMIT_BUDGET = 600.0
DEFAULT_DOWNLOAD_CONCURRENCY = 16
INTEGRATION = "Upstage OCR"
#: The form's Port label says why to fill it in: the hook would do without (see the form below).
PORT_LABEL = "Port (443 for https; the Test button needs it)"
#: pyproject.toml's ``[project.urls] Documentation``, which Airflow shows as ``documentation-url``
#: (it takes that field from the installed metadata, whatever this dict says).
DOCUMENTATION_URL = "https://airflow-provider-upstage.readthedocs.io/"


def get_provider_info() -> dict[str, Any]:
    # ``package-name`` must equal the distribution name, or every ``airflow`` command fails.
    return {
        "package-name": "airflow-provider-upstage",
        "name": "Upstage",
        "description": "Upstage OCR (document digitization): sync and deferrable OCR to word-level Parquet.",
        "versions": [__version__],
        "documentation-url": DOCUMENTATION_URL,
        "integrations": [
            {
                "integration-name": INTEGRATION,
                "external-doc-url": "https://console.upstage.ai/docs/capabilities/digitize/ocr",
                "tags": ["service"],
            }
        ],
        "hooks": [{"integration-name": INTEGRATION, "python-modules": ["upstage_provider.hooks.upstage"]}],
        "operators": [
            {
                "integration-name": INTEGRATION,
                "python-modules": ["upstage_provider.operators.ocr", "upstage_provider.operators.table"],
            }
        ],
        "sensors": [{"integration-name": INTEGRATION, "python-modules": ["upstage_provider.sensors.ocr"]}],
        "triggers": [{"integration-name": INTEGRATION, "python-modules": ["upstage_provider.triggers.ocr"]}],
        "connection-types": [
            {
                "connection-type": "upstage",
                "hook-class-name": "upstage_provider.hooks.upstage.UpstageOCRHook",
                "hook-name": "Upstage OCR",
                "ui-field-behaviour": {
                    # The form shows the Port and asks for it, though the Base URL can carry it:
                    # Airflow 3.3.2's connection list tests a connection by posting
                    # ``port: Number(port)``, 0 for an empty port, and its API answers 400 ("The
                    # host or port to test differs from the stored connection") when that is not
                    # the stored port. Its Test button works only for a connection saved with a
                    # port. The hook takes a Port that agrees with the Base URL's.
                    "hidden-fields": ["schema", "login"],
                    "relabeling": {"host": "Base URL", "password": "API key", "port": PORT_LABEL},
                    "placeholders": {
                        "host": DEFAULT_BASE_URL,
                        "password": "up_... (from console.upstage.ai)",
                        "port": "443",
                    },
                },
                "conn-fields": {
                    "timeout": {
                        "label": "Request timeout (seconds)",
                        "description": "Read timeout for API calls; sync OCR always gets at least 330 s.",
                        "schema": {"type": ["number", "null"], "default": DEFAULT_READ_TIMEOUT},
                    },
                    "max_retries": {
                        "label": "Retries on 5xx and network errors",
                        "schema": {"type": ["integer", "null"], "default": DEFAULT_MAX_RETRIES},
                    },
                    "rate_limit_budget": {
                        "label": "Seconds to keep waiting while rate limited (429)",
                        "description": "A 429 is waited out as the API asks, for up to this long; "
                        "it spends none of the retries.",
                        "schema": {"type": ["number", "null"], "default": DEFAULT_RATE_LIMIT_BUDGET},
                    },
                    "download_concurrency": {
                        "label": "Parallel batch downloads",
                        "schema": {"type": ["integer", "null"], "default": DEFAULT_DOWNLOAD_CONCURRENCY},
                    },
                    # No default: a price is the user's contract's, never the provider's guess.
                    "price_per_page": {
                        "label": "Price per billed page (optional)",
                        "description": "In your Upstage contract's currency, e.g. 0.0015; adds "
                        "estimated_cost to every landed summary and asset event.",
                        "schema": {"type": ["number", "null"], "minimum": 0},
                    },
                },
            }
        ],
    }


def legacy_ui_field_behaviour() -> dict[str, Any]:
    """The form's labels as Airflow 3.1's ``get_ui_field_behaviour()`` returns them (3.1 reads no
    ``ui-field-behaviour`` from the provider info)."""
    (conn,) = get_provider_info()["connection-types"]
    return {key.replace("-", "_"): value for key, value in conn["ui-field-behaviour"].items()}


def legacy_connection_form_widgets() -> dict[str, Any]:
    """The ``conn-fields`` as the wtforms fields Airflow 3.1's ``get_connection_form_widgets()``
    returns: its UI reads their label, description and default (it has no number field, so a
    number is a text field the hook parses, as it parses an extra written as JSON by hand)."""
    from flask_appbuilder.fieldwidgets import BS3TextFieldWidget
    from flask_babel import lazy_gettext
    from wtforms import IntegerField, StringField
    from wtforms.validators import Optional

    (conn,) = get_provider_info()["connection-types"]
    widgets: dict[str, Any] = {}
    for name, field in conn["conn-fields"].items():
        schema = field["schema"]
        integer = "integer" in schema["type"]
        default = schema.get("default")
        widgets[name] = (IntegerField if integer else StringField)(
            lazy_gettext(field["label"]),
            widget=BS3TextFieldWidget(),
            validators=[Optional()],
            description=field.get("description", ""),
            default=default if integer or default is None else str(default),
        )
    return widgets

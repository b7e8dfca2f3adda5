"""Provider metadata read by Airflow through the ``apache_airflow_provider`` entry point."""

from __future__ import annotations

from typing import Any

from upstage_provider import __version__

DEFAULT_BASE_URL = "https://api.upstage.ai"


def get_provider_info() -> dict[str, Any]:
    # ``package-name`` must equal the distribution name, or every ``airflow`` command fails.
    return {
        "package-name": "airflow-provider-upstage",
        "name": "Upstage",
        "description": "Upstage OCR (document digitization): sync and deferrable OCR to word-level Parquet.",
        "versions": [__version__],
        "integrations": [
            {
                "integration-name": "Upstage OCR",
                "external-doc-url": "https://console.upstage.ai/docs/capabilities/digitize/ocr",
                "tags": ["service"],
            }
        ],
        "hooks": [
            {
                "integration-name": "Upstage OCR",
                "python-modules": ["upstage_provider.hooks.upstage"],
            }
        ],
        "connection-types": [
            {
                "connection-type": "upstage",
                "hook-class-name": "upstage_provider.hooks.upstage.UpstageOCRHook",
                "hook-name": "Upstage OCR",
                "ui-field-behaviour": {
                    "hidden-fields": ["schema", "port", "login"],
                    "relabeling": {"host": "Base URL", "password": "API key"},
                    "placeholders": {
                        "host": DEFAULT_BASE_URL,
                        "password": "up_... (from console.upstage.ai)",
                    },
                },
                "conn-fields": {
                    "timeout": {
                        "label": "Request timeout (seconds)",
                        "description": "Read timeout for API calls; sync OCR of 100 pages can take minutes.",
                        "schema": {"type": ["integer", "null"], "default": 300},
                    },
                    "max_retries": {
                        "label": "Retries on 429, 5xx and network errors",
                        "schema": {"type": ["integer", "null"], "default": 5},
                    },
                    "download_concurrency": {
                        "label": "Parallel batch downloads",
                        "schema": {"type": ["integer", "null"], "default": 8},
                    },
                },
            }
        ],
    }

"""Apache Airflow provider for the Upstage OCR API."""

from __future__ import annotations

# The one version: setuptools reads it for the distribution, get_provider_info for Airflow.
__version__ = "0.1.0"

__all__ = ["__version__"]

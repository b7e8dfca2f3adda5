"""Sphinx configuration of the docs site (`make docs`): the Markdown pages in docs/ and the API reference."""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# Document the tree being built, not whichever copy the venv has installed.
sys.path.insert(0, str(ROOT / "provider"))
# autodoc imports Airflow: its config goes under build/ (gitignored), not the builder's ~/airflow,
# and its INFO lines stay out of the build's output.
os.environ.setdefault("AIRFLOW_HOME", str(ROOT / "build" / "docs-airflow-home"))
os.environ.setdefault("AIRFLOW__LOGGING__LOGGING_LEVEL", "WARNING")
logging.getLogger("airflow").setLevel(logging.WARNING)  # the lines logged before that setting is read

from upstage_provider import __version__  # noqa: E402

project = "airflow-provider-upstage"
author = "airflow-provider-upstage developers"
copyright = "airflow-provider-upstage developers"
release = version = __version__

extensions = ["myst_parser", "sphinx.ext.autodoc"]
source_suffix = {".md": "markdown"}
root_doc = "index"

# The pages link to each other's sections as GitHub does (`parquet.md#cost`): anchors for h1-h3.
myst_heading_anchors = 3

autodoc_member_order = "bysource"
autodoc_typehints = "description"
autodoc_typehints_description_target = "documented"  # no bare "kwargs (Any)" entries
autodoc_inherit_docstrings = False  # an undocumented execute() would show BaseOperator's text
autoclass_content = "class"

html_theme = "furo"
html_title = f"airflow-provider-upstage {release}"
html_static_path = ["_static"]
html_css_files = ["tables.css"]

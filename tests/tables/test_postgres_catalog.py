"""Iceberg on a PostgreSQL SQL catalog (``postgresql+psycopg2://``): a real server from apt's postgresql.

``make system-deps`` installs it; ``scripts/system_test.py`` starts one the same way.
"""

from __future__ import annotations

import collections
import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.tables.conftest import Warehouse
from tests.tables.landed import WORDS_PER_PAGE, land
from tests.tables.test_concurrency import race, rows_of
from tests.tables.test_operator import run

PG_BIN = next(iter(sorted(Path("/usr/lib/postgresql").glob("*/bin"))), None)


def as_postgres(cmd: list[str]) -> list[str]:
    """initdb and postgres refuse to run as root."""
    return ["runuser", "-u", "postgres", "--", *cmd] if os.geteuid() == 0 else cmd


@pytest.fixture
def postgres() -> Iterator[str]:
    if PG_BIN is None or not (PG_BIN / "pg_ctl").exists():
        pytest.fail("PostgreSQL is not installed: run make system-deps (apt-get install postgresql)")
    # Not under pytest's tmp_path: its parents are private to root, and postgres must reach it.
    work = Path(tempfile.mkdtemp(prefix="upstage-pg-"))
    if os.geteuid() == 0:
        shutil.chown(work, "postgres", "postgres")
    data = work / "data"
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    subprocess.run(
        as_postgres([str(PG_BIN / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust", "--no-sync"]),
        check=True,
        capture_output=True,
    )
    options = f"-p {port} -k {work} -c listen_addresses=127.0.0.1 -c fsync=off"
    pg_ctl = [str(PG_BIN / "pg_ctl"), "-D", str(data), "-w", "-t", "60"]
    subprocess.run(
        as_postgres([*pg_ctl, "-o", options, "-l", str(work / "log"), "start"]),
        check=True,
        capture_output=True,
    )
    try:
        yield f"postgresql+psycopg2://postgres@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run(as_postgres([*pg_ctl, "-m", "fast", "stop"]), check=False, capture_output=True)
        shutil.rmtree(work, ignore_errors=True)


def test_iceberg_on_a_postgresql_catalog_commits_once_per_word(postgres: str, tmp_path: Path) -> None:
    warehouse = Warehouse("iceberg", tmp_path)
    warehouse.catalog_properties["uri"] = postgres
    lake = tmp_path / "lake"
    landed = [land(lake, "ds=2026-11-24", "/in/a.pdf", 2), land(lake, "ds=2026-11-24", "/in/b.pdf", 1)]
    run(warehouse, landed)
    run(warehouse, landed)
    # Two more days committed at once: PostgreSQL's row update is the catalog's compare-and-swap.
    race(
        warehouse,
        [rows_of(lake, "ds=2026-11-25", ["/in/c.pdf"], 1), rows_of(lake, "ds=2026-11-26", ["/in/d.pdf"], 2)],
    )

    words = warehouse.read("words")
    counts = collections.Counter(zip(words["ds"].to_pylist(), words["document_uri"].to_pylist(), strict=True))
    assert counts == {
        ("2026-11-24", "/in/a.pdf"): 2 * WORDS_PER_PAGE,
        ("2026-11-24", "/in/b.pdf"): WORDS_PER_PAGE,
        ("2026-11-25", "/in/c.pdf"): WORDS_PER_PAGE,
        ("2026-11-26", "/in/d.pdf"): 2 * WORDS_PER_PAGE,
    }

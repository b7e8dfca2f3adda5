"""UpstageOCRTableOperator on real Iceberg (SQLite SQL catalog) and Delta tables in tmp_path."""

from __future__ import annotations

import collections
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from tests.tables.conftest import Warehouse
from tests.tables.landed import WORDS_PER_PAGE, land
from upstage_provider.compat import AirflowFailException
from upstage_provider.operators.table import UpstageOCRTableOperator

DAY1, DAY2 = "ds=2026-11-24", "ds=2026-11-25"


def run(warehouse: Warehouse, summaries: Any = None, **kwargs: Any) -> dict[str, Any]:
    task_id = f"table_{len(kwargs)}"
    op = UpstageOCRTableOperator(task_id=task_id, summaries=summaries, **warehouse.kwargs(), **kwargs)
    return op.execute(context={})  # type: ignore[arg-type]


def keys(table: pa.Table, *columns: str) -> collections.Counter[tuple[Any, ...]]:
    return collections.Counter(zip(*(table.column(c).to_pylist() for c in columns), strict=True))


def per_document(table: pa.Table) -> dict[tuple[str, str], int]:
    counts = table.group_by(["ds", "document_uri"]).aggregate([("page", "count")])
    return {(r["ds"], r["document_uri"]): r["page_count"] for r in counts.to_pylist()}


def test_first_run_creates_partitioned_sorted_tables(warehouse: Warehouse, tmp_path: Path) -> None:
    lake = tmp_path / "lake"
    landed = [land(lake, DAY1, "/in/b.pdf", 2), None, land(lake, DAY1, "/in/a.pdf", 3)]

    summary = run(warehouse, landed)

    assert summary["partition"] == DAY1
    assert summary["documents"] == 2
    assert summary["rows"] == {"words": 5 * WORDS_PER_PAGE, "pages": 5}
    for kind in ("words", "pages"):
        entry = summary["tables"][kind]
        assert entry["created"] is True
        assert entry["rows"] == summary["rows"][kind]
        assert entry["bytes"] > 0
        assert entry["files"] >= 1
        assert entry["attempts"] == 1
    words = warehouse.read("words")
    assert set(words.column("ds").to_pylist()) == {"2026-11-24"}
    assert keys(words, "document_uri", "page", "word_id").most_common(1)[0][1] == 1
    if warehouse.format == "iceberg":
        assert summary["tables"]["words"]["snapshot_id"] is not None
        table = warehouse.catalog().load_table("upstage_ocr.words")
        (field,) = table.spec().fields
        assert (table.schema().find_column_name(field.source_id), str(field.transform)) == ("ds", "identity")
        sort = [table.schema().find_column_name(f.source_id) for f in table.sort_order().fields]
        assert sort == ["document_uri", "page", "word_id"]
        pages = warehouse.catalog().load_table("upstage_ocr.pages")
        assert [pages.schema().find_column_name(f.source_id) for f in pages.sort_order().fields] == [
            "document_uri",
            "page",
        ]
        # One commit for the run: the table's metadata moved once after it was created.
        assert len(table.history()) == 1
    else:
        from deltalake import DeltaTable

        table = DeltaTable(warehouse.table("words"))
        assert table.metadata().partition_columns == ["ds"]
        assert summary["tables"]["words"]["version"] == 1  # 0 is the empty table's creation
        assert len(table.history()) == 2
    # Rows are written in the sort order within each data file.
    for path in warehouse.data_files("words"):
        rows = pq.read_table(path.removeprefix("file://"), columns=["document_uri", "page", "word_id"])
        ordered = rows.sort_by(
            [("document_uri", "ascending"), ("page", "ascending"), ("word_id", "ascending")]
        )
        assert rows.equals(ordered)


def test_same_day_twice_leaves_every_word_once(warehouse: Warehouse, tmp_path: Path) -> None:
    lake = tmp_path / "lake"
    landed = [land(lake, DAY1, f"/in/doc-{i}.pdf", 2) for i in range(3)]

    first = run(warehouse, landed)
    second = run(warehouse, landed)

    words, pages = warehouse.read("words"), warehouse.read("pages")
    assert words.num_rows == first["rows"]["words"] == 3 * 2 * WORDS_PER_PAGE
    assert set(keys(words, "document_uri", "page", "word_id").values()) == {1}
    assert set(keys(pages, "document_uri", "page").values()) == {1}
    assert pages.num_rows == 6
    assert second["tables"]["words"]["created"] is False


def test_a_second_day_adds_its_rows_and_leaves_the_first(warehouse: Warehouse, tmp_path: Path) -> None:
    lake = tmp_path / "lake"
    run(warehouse, [land(lake, DAY1, "/in/a.pdf", 2), land(lake, DAY1, "/in/b.pdf", 1)])
    day1 = warehouse.read("words")

    # The same document again on another day is another day's row, not a replacement.
    run(warehouse, [land(lake, DAY2, "/in/a.pdf", 4)])

    words = warehouse.read("words")
    assert per_document(words) == {
        ("2026-11-24", "/in/a.pdf"): 2 * WORDS_PER_PAGE,
        ("2026-11-24", "/in/b.pdf"): WORDS_PER_PAGE,
        ("2026-11-25", "/in/a.pdf"): 4 * WORDS_PER_PAGE,
    }
    still = words.filter(pc.equal(words["ds"], "2026-11-24"))
    assert keys(still, "document_uri", "word_id", "processed_at") == keys(
        day1, "document_uri", "word_id", "processed_at"
    )


def test_a_rerun_with_fewer_changed_documents_replaces_exactly_those(
    warehouse: Warehouse, tmp_path: Path
) -> None:
    lake = tmp_path / "lake"
    run(warehouse, [land(lake, DAY1, f"/in/{name}.pdf", 3) for name in "abc"])
    run(warehouse, [land(lake, DAY2, "/in/a.pdf", 1)])
    before = warehouse.read("words")

    # b changed (now 1 page of new words), a and c did not run again, one document failed (None).
    run(warehouse, [land(lake, DAY1, "/in/b.pdf", 1, tag="v2-"), None])

    words = warehouse.read("words")
    assert per_document(words) == {
        ("2026-11-24", "/in/a.pdf"): 3 * WORDS_PER_PAGE,
        ("2026-11-24", "/in/b.pdf"): WORDS_PER_PAGE,
        ("2026-11-24", "/in/c.pdf"): 3 * WORDS_PER_PAGE,
        ("2026-11-25", "/in/a.pdf"): WORDS_PER_PAGE,
    }
    b = words.filter(pc.equal(words["document_uri"], "/in/b.pdf"))
    assert all(text.startswith("v2-") for text in b.column("text").to_pylist())
    untouched = pc.not_equal(before["document_uri"], "/in/b.pdf")
    keep = pc.not_equal(words["document_uri"], "/in/b.pdf")
    columns = ("ds", "document_uri", "word_id", "text", "processed_at")
    assert keys(words.filter(keep), *columns) == keys(before.filter(untouched), *columns)
    pages = warehouse.read("pages")
    assert per_document(pages)[("2026-11-24", "/in/b.pdf")] == 1


def test_a_document_with_no_words_removes_its_earlier_words(warehouse: Warehouse, tmp_path: Path) -> None:
    lake = tmp_path / "lake"
    run(warehouse, [land(lake, DAY1, "/in/a.pdf", 2), land(lake, DAY1, "/in/b.pdf", 2)])

    summary = run(warehouse, [land(lake, DAY1, "/in/a.pdf", 2, words=0)])

    assert summary["rows"]["words"] == 0
    words = warehouse.read("words")
    assert set(words.column("document_uri").to_pylist()) == {"/in/b.pdf"}
    assert per_document(warehouse.read("pages"))[("2026-11-24", "/in/a.pdf")] == 2


def test_the_output_folder_and_partition_are_an_input(warehouse: Warehouse, tmp_path: Path) -> None:
    lake = tmp_path / "lake"
    land(lake, DAY1, "/in/a.pdf", 2)
    land(lake, DAY1, "/in/b.pdf", 1)
    land(lake, DAY2, "/in/other-day.pdf", 1)
    (lake / "words" / DAY1 / ".a-123.parquet.tmp-0").write_bytes(b"half written")

    summary = run(warehouse, output_uri=str(lake), partition=DAY1)

    assert summary["documents"] == 2
    assert summary["files"] == 4
    assert set(warehouse.read("pages").column("document_uri").to_pylist()) == {"/in/a.pdf", "/in/b.pdf"}


def test_a_newer_column_evolves_the_table_and_older_rows_get_nulls(
    warehouse: Warehouse, tmp_path: Path
) -> None:
    lake = tmp_path / "lake"
    run(warehouse, [land(lake, DAY1, "/in/old.pdf", 2)])
    newer = land(lake, DAY2, "/in/new.pdf", 3)
    older = land(lake, DAY2, "/in/older-writer.pdf", 1)
    pages = pq.read_table(newer["pages_uri"])
    pq.write_table(
        pages.append_column(pa.field("rotation", pa.int32()), pa.array([1, 1, 1], pa.int32())),
        newer["pages_uri"],
    )

    run(warehouse, [newer, older])

    table = warehouse.read("pages")
    rotation = dict(
        zip(table.column("document_uri").to_pylist(), table.column("rotation").to_pylist(), strict=True)
    )
    assert rotation == {"/in/old.pdf": None, "/in/new.pdf": 1, "/in/older-writer.pdf": None}
    assert table.schema.names[-1] == "rotation"


def test_bad_partitions_fail_before_any_commit(warehouse: Warehouse, tmp_path: Path) -> None:
    lake = tmp_path / "lake"
    a, b = land(lake, DAY1, "/in/a.pdf", 1), land(lake, DAY2, "/in/b.pdf", 1)
    with pytest.raises(AirflowFailException, match="several partitions"):
        run(warehouse, [a, b])
    with pytest.raises(AirflowFailException, match="one Hive-style segment"):
        run(warehouse, [a], partition="2026-11-24")
    with pytest.raises(AirflowFailException, match="already a column"):
        run(warehouse, [a], partition="page=1")
    assert not (warehouse.root / "delta").exists()
    assert not (warehouse.root / "catalog.db").exists() or not warehouse.catalog().list_tables("upstage_ocr")


def test_no_landed_documents_commits_nothing(warehouse: Warehouse) -> None:
    summary = run(warehouse, [None, None], partition=DAY1)
    assert summary["documents"] == 0
    assert summary["tables"] == {}

"""The output check before any paid call: it refuses what cannot be written, and races with nobody."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from upstage_provider.compat import AirflowFailException
from upstage_provider.runtime import WRITE_CHECK_PREFIX, check_output_writable


def test_concurrent_checks_of_one_new_folder_all_pass_and_leave_no_marker(tmp_path: Path) -> None:
    """Mapped sensors of one day check the same lake root at the same moment."""
    for round_ in range(40):
        folder = tmp_path / f"lake-{round_}" / "ocr"
        with ThreadPoolExecutor(max_workers=8) as pool:
            results = list(pool.map(check_output_writable, [str(folder)] * 8))
        assert results == [None] * 8
        assert folder.is_dir()
        assert not [p for p in folder.iterdir() if p.name.startswith(WRITE_CHECK_PREFIX)]


def test_a_file_where_the_folder_should_be_is_refused_with_what_to_do(tmp_path: Path) -> None:
    (tmp_path / "lake").write_text("not a folder")
    with pytest.raises(AirflowFailException, match="check permissions or choose another output_uri"):
        check_output_writable(str(tmp_path / "lake" / "ocr"))

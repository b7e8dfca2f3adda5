"""The archive rules of ``make dist`` (scripts/check_dist.py): what a wheel and an sdist may carry.

``make dist`` itself runs them on the real archives; these cases show each rule catches what it is for.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest


def _load_script() -> ModuleType:
    path = Path(__file__).resolve().parents[1] / "scripts" / "check_dist.py"
    spec = importlib.util.spec_from_file_location("check_dist", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


check_dist = _load_script()
V = "1.2.3"
INFO = f"airflow_provider_upstage-{V}.dist-info/"
GOOD_WHEEL = [
    "upstage_provider/__init__.py",
    "upstage_provider/py.typed",
    "upstage_provider/hooks/upstage.py",
    f"{INFO}METADATA",
    f"{INFO}entry_points.txt",
    f"{INFO}licenses/LICENSE",
    f"{INFO}RECORD",
]
SOURCE = {"upstage_provider/__init__.py", "upstage_provider/py.typed", "upstage_provider/hooks/upstage.py"}
TOP = f"airflow_provider_upstage-{V}/"
GOOD_SDIST = (
    [TOP[:-1]]
    + [
        TOP + name
        for name in ("PKG-INFO", "pyproject.toml", "README.md", "LICENSE", "CHANGELOG.md", "setup.cfg")
    ]
    + [f"{TOP}provider/{name}" for name in sorted(SOURCE)]
)


def test_the_package_and_its_metadata_pass() -> None:
    assert check_dist.wheel_problems(GOOD_WHEEL, V, SOURCE) == []
    assert check_dist.sdist_problems(GOOD_SDIST, V, SOURCE) == []


@pytest.mark.parametrize(
    "stray",
    [
        "tests/test_models.py",
        "benchmarks/run.py",
        "docs/parquet.md",
        "upstage_provider/tests/test_hook.py",
        "upstage_provider/test_wire.py",
        "upstage_provider/conftest.py",
        "airflow_provider_upstage-0.0.1.dist-info/METADATA",
    ],
)
def test_tests_docs_benchmarks_and_foreign_files_fail_the_wheel(stray: str) -> None:
    problems = check_dist.wheel_problems([*GOOD_WHEEL, stray], V, SOURCE)
    assert problems
    assert all(problem.startswith(f"{stray} ") for problem in problems)


def test_a_package_file_left_out_of_the_wheel_is_named() -> None:
    wheel = [n for n in GOOD_WHEEL if n != "upstage_provider/hooks/upstage.py"]
    assert check_dist.wheel_problems(wheel, V, SOURCE) == ["upstage_provider/hooks/upstage.py is missing"]
    without_license = [n for n in GOOD_WHEEL if not n.endswith("LICENSE")]
    assert check_dist.wheel_problems(without_license, V, SOURCE) == [f"{INFO}licenses/LICENSE is missing"]


@pytest.mark.parametrize("folder", ["tests", "docs", "benchmarks", "dags", "scripts", ".ci"])
def test_repository_folders_fail_the_sdist(folder: str) -> None:
    (problem,) = check_dist.sdist_problems([*GOOD_SDIST, f"{TOP}{folder}/x.py"], V, SOURCE)
    assert problem == f"{folder}/x.py should not be shipped"


def test_the_sdist_needs_its_changelog_license_and_package() -> None:
    sdist = [n for n in GOOD_SDIST if not n.endswith(("CHANGELOG.md", "hooks/upstage.py"))]
    assert check_dist.sdist_problems(sdist, V, SOURCE) == [
        "CHANGELOG.md is missing",
        "provider/upstage_provider/hooks/upstage.py is missing",
    ]


def test_the_sdist_line_says_what_it_carries() -> None:
    files = [n for n in GOOD_SDIST if n != TOP[:-1]]
    described = check_dist.describe_sdist(files, V)
    assert described.startswith("9 files: 3 under provider/upstage_provider/, 0 egg-info, CHANGELOG.md")

"""``make dist``: build the sdist and the wheel, check both, and check the wheel installed next to Airflow.

Steps: ``uv build`` (the sdist, then the wheel from the sdist, so the sdist is proven to build),
``twine check --strict`` (in uv's own throw-away tool environment, so twine's dependencies cannot
hide a dependency the wheel forgot), a listing of both archives, then a fresh venv in a temporary
directory with ``apache-airflow`` (no extras; the version of the interpreter running this script)
and the wheel (no extras). There it checks what a user of ``pip install airflow-provider-upstage``
gets: ``airflow providers list`` and ``airflow providers get --full`` show the provider, its hooks,
operators, sensors, triggers and documentation URL; importing the package's modules pulls in
neither the emulator nor FastAPI; and the emulator refuses to start, naming the ``[emulator]``
extra. Prints one line per check and exits 1 with every failure listed, 0 when all pass.
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
import zipfile
from collections.abc import Iterable, Sequence
from email.parser import Parser
from importlib import metadata
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
PACKAGE = "upstage_provider"
DIST_NAME = "airflow-provider-upstage"
PROJECT = "airflow_provider_upstage"  # the distribution name as archive file names spell it
SECTIONS = ("hooks", "operators", "sensors", "triggers")
#: What importing the provider must never load: the emulator and the web stack it runs on.
FORBIDDEN_MODULES = (f"{PACKAGE}.emulator", "fastapi", "starlette", "uvicorn")
INSTALL_HINT = f"pip install '{DIST_NAME}[emulator]'"
#: Folder and file names that mark tests, docs or benchmarks, wherever they are in the wheel.
NOT_IN_WHEEL = ("tests", "test", "docs", "benchmarks", "conftest.py")
#: Top-level folders of the repository that belong in neither archive.
NOT_SHIPPED = ("tests", "docs", "benchmarks", "dags", "scripts", "docker", ".ci", "build", "dist")
SDIST_FILES = ("PKG-INFO", "pyproject.toml", "README.md", "LICENSE", "CHANGELOG.md")
#: Modules that only an extra's package makes importable, by design, and the module they lack.
NEEDS_AN_EXTRA = {f"{PACKAGE}.lineage_facets": "openlineage"}  # [openlineage]; lineage.py imports it lazily

# Run inside the check venv: import the modules named on the command line, then every other module
# of the package outside the emulator; for each, which forbidden packages it was the first to load.
IMPORT_PROBE = """
import importlib, json, pkgutil, sys
forbidden = tuple(sys.argv[1].split(","))
seen = set()
def newly_loaded():
    found = {f for f in forbidden for m in list(sys.modules) if m == f or m.startswith(f + ".")}
    new = sorted(found - seen)
    seen.update(found)
    return new
report = {"listed": {}, "others": {}}
for name in sys.argv[2:]:
    try:
        importlib.import_module(name)
    except Exception as exc:
        report["listed"][name] = f"{type(exc).__name__}: {exc}"
    else:
        report["listed"][name] = newly_loaded()
import upstage_provider
report["file"] = upstage_provider.__file__
for info in pkgutil.walk_packages(upstage_provider.__path__, "upstage_provider."):
    if info.name == "upstage_provider.emulator" or info.name.startswith("upstage_provider.emulator."):
        continue
    try:
        importlib.import_module(info.name)
    except Exception as exc:
        missing = getattr(exc, "name", None)  # ModuleNotFoundError: the module not found
        report["others"][info.name] = {"error": f"{type(exc).__name__}: {exc}", "missing": missing}
    else:
        report["others"][info.name] = newly_loaded()
from upstage_provider.get_provider_info import get_provider_info
report["documentation_url"] = get_provider_info().get("documentation-url")
print(json.dumps(report))
"""


class Checks:
    """Collects one line per check; failures are kept for the closing summary."""

    def __init__(self) -> None:
        self.failures: list[str] = []

    def check(self, ok: bool, what: str, why: str = "") -> bool:
        print(f"dist: {'ok  ' if ok else 'FAIL'} {what}{'' if ok or not why else f': {why}'}", flush=True)
        if not ok:
            self.failures.append(f"{what}: {why}" if why else what)
        return ok


def source_version() -> str:
    """``__version__`` as written in the package, read without importing it."""
    tree = ast.parse((REPO / "provider" / PACKAGE / "__init__.py").read_text())
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == "__version__" for t in node.targets
        ):
            return str(ast.literal_eval(node.value))
    raise SystemExit(f"dist: no __version__ in provider/{PACKAGE}/__init__.py")


def source_files() -> set[str]:
    """The package's files as the wheel should carry them (``upstage_provider/...``)."""
    root = REPO / "provider"
    return {
        path.relative_to(root).as_posix()
        for path in (root / PACKAGE).rglob("*")
        if path.is_file() and "__pycache__" not in path.parts and path.suffix in (".py", ".typed")
    }


def wheel_problems(names: Iterable[str], version: str, expected: set[str]) -> list[str]:
    """Why a wheel with these member names is wrong: foreign files, or package files missing."""
    names = set(names)
    dist_info = f"{PROJECT}-{version}.dist-info/"
    problems = [
        f"{name} is neither the package nor its metadata"
        for name in sorted(names)
        if not name.startswith((f"{PACKAGE}/", dist_info))
    ]
    problems += [
        f"{name} looks like tests, docs or benchmarks"
        for name in sorted(names)
        if any(part in NOT_IN_WHEEL or part.startswith("test_") for part in name.split("/"))
    ]
    problems += [f"{name} is missing" for name in sorted(expected - names)]
    needed = ("METADATA", "entry_points.txt", "licenses/LICENSE")
    problems += [f"{dist_info}{name} is missing" for name in needed if dist_info + name not in names]
    return problems


def sdist_problems(names: Iterable[str], version: str, expected: set[str]) -> list[str]:
    """Why an sdist with these member names is wrong: a repository folder shipped, or a file missing."""
    top = f"{PROJECT}-{version}/"
    inside = {name[len(top) :] for name in names if name.startswith(top)}
    problems = [f"{name} is outside {top}" for name in sorted(names) if not name.startswith(top[:-1])]
    problems += [
        f"{name} should not be shipped" for name in sorted(inside) if name.split("/")[0] in NOT_SHIPPED
    ]
    problems += [f"{name} is missing" for name in SDIST_FILES if name not in inside]
    problems += [
        f"provider/{name} is missing" for name in sorted(expected) if f"provider/{name}" not in inside
    ]
    return problems


def describe_sdist(files: Sequence[str], version: str) -> str:
    """What the sdist carries, in one line: counts for the package and egg-info, the other names."""
    top = f"{PROJECT}-{version}/"
    files = [name[len(top) :] for name in files if name.startswith(top)]
    package = [f for f in files if f.startswith(f"provider/{PACKAGE}/")]
    egg_info = [f for f in files if ".egg-info/" in f]
    rest = sorted(set(files) - set(package) - set(egg_info))
    return (
        f"{len(files)} files: {len(package)} under provider/{PACKAGE}/, {len(egg_info)} egg-info, "
        + ", ".join(rest)
    )


def run(command: Sequence[str | Path], **kwargs: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(c) for c in command], capture_output=True, text=True, timeout=600, **kwargs)


def must(done: subprocess.CompletedProcess[str], what: str) -> subprocess.CompletedProcess[str]:
    """Stop at once when a step the later checks need fails, with its output."""
    if done.returncode != 0:
        sys.stderr.write(done.stdout + done.stderr)
        raise SystemExit(f"dist: FAIL {what} (exit {done.returncode}); see the output above")
    return done


def json_output(done: subprocess.CompletedProcess[str]) -> Any:
    """The JSON that an ``airflow ... -o json`` command printed, past any lines of warnings."""
    lines = done.stdout.splitlines()
    start = next((i for i, line in enumerate(lines) if line.startswith(("[", "{"))), None)
    if start is None:
        raise ValueError(f"no JSON in the output: {done.stdout[-500:]!r} {done.stderr[-500:]!r}")
    return json.loads("\n".join(lines[start:]))


def build(uv: str, out: Path, version: str) -> tuple[Path, Path]:
    out.mkdir(parents=True, exist_ok=True)
    for old in out.glob(f"{PROJECT}-*"):
        old.unlink()
    egg_info = REPO / "provider" / f"{PROJECT}.egg-info"
    had_egg_info = egg_info.exists()
    try:
        must(run([uv, "build", "--quiet", "--out-dir", out, REPO]), "uv build")
    finally:
        if not had_egg_info:  # setuptools leaves it in the tree while it makes the sdist
            shutil.rmtree(egg_info, ignore_errors=True)
    wheels = list(out.glob(f"{PROJECT}-{version}-py3-none-any.whl"))
    sdists = list(out.glob(f"{PROJECT}-{version}.tar.gz"))
    if len(wheels) != 1 or len(sdists) != 1:
        found = sorted(p.name for p in out.iterdir())
        raise SystemExit(
            f"dist: FAIL expected one wheel and one sdist of version {version} in {out}, found {found}"
        )
    return wheels[0], sdists[0]


def check_archives(checks: Checks, wheel: Path, sdist: Path, version: str) -> str:
    """List both archives; returns the wheel's Documentation URL from its metadata."""
    expected = source_files()
    with zipfile.ZipFile(wheel) as archive:
        wheel_names = archive.namelist()
        meta = Parser().parsestr(archive.read(f"{PROJECT}-{version}.dist-info/METADATA").decode())
    problems = wheel_problems(wheel_names, version, expected)
    checks.check(
        not problems,
        f"wheel {wheel.name}: {len(wheel_names)} files, only {PACKAGE}/ ({len(expected)} source files) "
        "and its dist-info",
        "; ".join(problems[:10]),
    )
    checks.check(
        meta["Version"] == version, f"wheel metadata version {meta['Version']} == __version__ {version}"
    )
    urls = dict(entry.split(", ", 1) for entry in meta.get_all("Project-URL") or [])
    for name in ("Documentation", "Changelog", "Source"):
        checks.check(
            urls.get(name, "").startswith("https://"), f"wheel metadata Project-URL {name}: {urls.get(name)}"
        )
    with tarfile.open(sdist) as archive:
        sdist_names = archive.getnames()
        sdist_files = [member.name for member in archive.getmembers() if member.isfile()]
    problems = sdist_problems(sdist_names, version, expected)
    checks.check(
        not problems, f"sdist {sdist.name}: {describe_sdist(sdist_files, version)}", "; ".join(problems[:10])
    )
    return urls.get("Documentation", "")


def check_installed(
    checks: Checks, venv: Path, env: dict[str, str], cwd: Path, version: str, doc_url: str
) -> None:
    bin_dir = venv / "bin"
    listed = json_output(
        must(
            run([bin_dir / "airflow", "providers", "list", "-o", "json"], env=env, cwd=cwd),
            "airflow providers list",
        )
    )
    ours = [p for p in listed if p.get("package_name") == DIST_NAME]
    checks.check(
        len(ours) == 1 and ours[0].get("version") == version,
        f"`airflow providers list` shows {DIST_NAME} {version}",
        f"got {ours or [p.get('package_name') for p in listed]}",
    )
    command: list[str | Path] = [bin_dir / "airflow", "providers", "get", DIST_NAME, "--full", "-o", "json"]
    (info,) = json_output(must(run(command, env=env, cwd=cwd), "airflow providers get"))
    modules: list[str] = []
    for section in SECTIONS:
        names = [m for entry in info.get(section) or [] for m in entry.get("python-modules", [])]
        modules += names
        checks.check(bool(names), f"`airflow providers get --full` lists {section}: {', '.join(names)}")
    checks.check(
        info.get("versions") == [version], f"provider info versions {info.get('versions')} == [{version}]"
    )
    shown = info.get("documentation-url")
    checks.check(
        bool(shown) and shown == doc_url,
        f"`airflow providers get --full` shows documentation-url {shown}",
        f"expected the wheel's Documentation URL {doc_url}",
    )

    done = must(
        run(
            [bin_dir / "python", "-c", IMPORT_PROBE, ",".join(FORBIDDEN_MODULES), *modules], env=env, cwd=cwd
        ),
        "importing the provider's modules",
    )
    report = json.loads(done.stdout.splitlines()[-1])
    checks.check(
        Path(report["file"]).is_relative_to(venv), f"{PACKAGE} imports from the venv: {report['file']}"
    )
    for name, found in report["listed"].items():
        checks.check(
            found == [],
            f"import {name}: no emulator, FastAPI, Starlette or uvicorn",
            found if isinstance(found, str) else f"loaded {found}",
        )
    checks.check(
        report["documentation_url"] == shown,
        f"get_provider_info()['documentation-url'] == the metadata's: {report['documentation_url']}",
    )
    broken: dict[str, str] = {}
    needs_extra: list[str] = []
    leaky: dict[str, list[str]] = {}
    for name, result in report["others"].items():
        if isinstance(result, list):
            if result:
                leaky[name] = result
        elif result["missing"] is not None and result["missing"] == NEEDS_AN_EXTRA.get(name):
            needs_extra.append(name)
        else:
            broken[name] = result["error"]
    checks.check(
        not broken,
        f"the other {len(report['others'])} modules outside the emulator import "
        f"(without their extra's package: {', '.join(needs_extra) or 'none'})",
        str(broken),
    )
    checks.check(not leaky, "and none of them loads the emulator, FastAPI, Starlette or uvicorn", str(leaky))

    refusals = {
        "import upstage_provider.emulator": ["python", "-c", "import upstage_provider.emulator"],
        "python -m upstage_provider.emulator --help": ["python", "-m", "upstage_provider.emulator", "--help"],
        "upstage-emulator --help": ["upstage-emulator", "--help"],
    }
    for what, (program, *rest) in refusals.items():
        done = run([bin_dir / program, *rest], env=env, cwd=cwd)
        last = (done.stderr.strip().splitlines() or [""])[-1]
        checks.check(
            done.returncode != 0 and INSTALL_HINT in last,
            f"without the extra, `{what}` fails naming it: {last}",
            f"exit {done.returncode}, stderr ends {last!r}",
        )
    checks.check(
        done.returncode == 2 and "Traceback" not in done.stderr,
        "`upstage-emulator` says so in one line (no traceback) and exits 2",
        f"exit {done.returncode}",
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--uv", default=shutil.which("uv") or str(Path(sys.executable).with_name("uv")))
    parser.add_argument("--out", type=Path, default=REPO / "dist", help="where the sdist and wheel go")
    parser.add_argument(
        "--airflow", help="the apache-airflow requirement (default: this interpreter's version)"
    )
    args = parser.parse_args(argv)
    started = time.monotonic()
    checks = Checks()
    version = source_version()
    try:
        airflow = args.airflow or f"apache-airflow=={metadata.version('apache-airflow')}"
    except metadata.PackageNotFoundError:
        airflow = "apache-airflow>=3.3,<3.4"

    wheel, sdist = build(args.uv, args.out.resolve(), version)
    print(f"dist: built {sdist.name} and {wheel.name} in {time.monotonic() - started:.1f} s", flush=True)
    twine = run(
        [
            args.uv,
            "tool",
            "run",
            "--quiet",
            "--from",
            "twine>=6.1",
            "twine",
            "check",
            "--strict",
            sdist,
            wheel,
        ]
    )
    checks.check(twine.returncode == 0, "twine check --strict", (twine.stdout + twine.stderr).strip()[-1000:])
    doc_url = check_archives(checks, wheel, sdist, version)

    with tempfile.TemporaryDirectory(prefix="upstage-dist-check-") as tmp:
        venv = Path(tmp) / "venv"
        must(run([args.uv, "venv", "--quiet", "--python", sys.executable, venv]), "uv venv")
        install = [args.uv, "pip", "install", "--quiet", "--python", venv / "bin" / "python", airflow, wheel]
        must(run(install), f"installing {airflow} and the wheel")
        print(
            f"dist: installed {airflow} and the wheel in a new venv (at {time.monotonic() - started:.1f} s)",
            flush=True,
        )
        # Nothing of the work tree may be importable there: not PYTHONPATH, not the current folder.
        # PYTHONDONTWRITEBYTECODE off: the first `airflow` command compiles what it imports into the
        # throw-away venv and the later ones reuse it (with it on, each compiles Airflow again).
        unset = ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "PYTHONDONTWRITEBYTECODE")
        env = {k: v for k, v in os.environ.items() if k not in unset}
        env |= {"AIRFLOW_HOME": str(Path(tmp) / "airflow"), "AIRFLOW__CORE__LOAD_EXAMPLES": "False"}
        check_installed(checks, venv, env, Path(tmp), version, doc_url)

    elapsed = time.monotonic() - started
    if checks.failures:
        print(f"dist: {len(checks.failures)} check(s) failed in {elapsed:.0f} s:")
        for failure in checks.failures:
            print(f"  - {failure}")
        return 1
    print(f"dist: all checks passed in {elapsed:.0f} s; {sdist.name} and {wheel.name} are in {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

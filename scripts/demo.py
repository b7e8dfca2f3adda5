"""``make demo``: the main job end to end on the embedded emulator, with no API key and no network.

1. starts the emulator (real offline OCR) on a free loopback port;
2. sets up a throwaway AIRFLOW_HOME (SQLite) with the ``upstage_default`` connection;
3. runs ``upstage_ocr_ingest`` through ``airflow dags test`` on the four sample documents plus
   two generated multi-page scans long enough for several async batches;
4. prints where the Parquet landed and a per-document summary;
5. renders one page with its word boxes drawn over it, as a PNG;
6. stops the emulator.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT.parent / "shared" / "upstage-samples"
OUT = ROOT / "demo-output"
# The run's logical date: today (UTC), as a scheduled run would land it; UPSTAGE_DEMO_DATE pins
# another day (YYYY-MM-DD), e.g. to compare two demo runs' lakes.
DAY = os.environ.get("UPSTAGE_DEMO_DATE") or datetime.now(timezone.utc).date().isoformat()
CONFIDENT = 0.8
GREEN, RED = (0, 160, 0), (220, 0, 0)
DEMO_KEY = "demo-key-not-a-secret"
BIN = Path(sys.executable).parent


def main() -> int:
    if OUT.exists():
        shutil.rmtree(OUT)
    inbox, lake = OUT / "inbox", OUT / "lake"
    inbox.mkdir(parents=True)
    for sample in sorted(SAMPLES.glob("*")):
        if sample.suffix.lower() in {".png", ".jpg", ".pdf"}:
            shutil.copy(sample, inbox / sample.name)
    (inbox / "generated-scan-12-pages.pdf").write_bytes(scanned_pdf(12, "Quarterly report"))
    (inbox / "generated-scan-24-pages.pdf").write_bytes(scanned_pdf(24, "Delivery note"))
    print(
        f"inbox: {len(list(inbox.iterdir()))} documents in {inbox}; logical date {DAY} (today, UTC; "
        "UPSTAGE_DEMO_DATE=YYYY-MM-DD pins another)"
    )

    emulator, url = start_emulator()
    print(f"emulator: {url} (offline OCR: Tesseract)")
    home = Path(tempfile.mkdtemp(prefix="upstage-demo-airflow-"))
    env = airflow_env(home, url, inbox, lake)
    log_file = OUT / "airflow-dags-test.log"
    try:
        run([str(BIN / "airflow"), "db", "migrate"], env, log_file)
        print(f"airflow: throwaway AIRFLOW_HOME {home}; running upstage_ocr_ingest for {DAY} ...")
        started = time.monotonic()
        run([str(BIN / "airflow"), "dags", "test", "upstage_ocr_ingest", DAY], env, log_file)
        print(
            f"airflow: upstage_ocr_ingest succeeded in {time.monotonic() - started:.0f} s (log: {log_file})"
        )
    finally:
        emulator.terminate()
        emulator.wait(timeout=15)
        shutil.rmtree(home, ignore_errors=True)
    partition = f"ds={DAY}"
    print(
        f"emulator: stopped\n\nParquet landed in {lake / 'words' / partition} "
        f"and {lake / 'pages' / partition}"
    )
    summarize(lake, partition)
    png = render_boxes(lake, partition, inbox / "dpi_150.jpg", OUT / "dpi_150.boxes.png")
    print(f"\nword boxes drawn over dpi_150.jpg: {png}")
    return 0


def airflow_env(home: Path, url: str, inbox: Path, lake: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")}
    env.update(
        AIRFLOW_HOME=str(home),
        AIRFLOW__CORE__DAGS_FOLDER=str(ROOT / "dags"),
        AIRFLOW__CORE__LOAD_EXAMPLES="False",
        AIRFLOW__DATABASE__SQL_ALCHEMY_CONN=f"sqlite:///{home}/airflow.db",
        AIRFLOW_CONN_UPSTAGE_DEFAULT=json.dumps({"conn_type": "upstage", "host": url, "password": DEMO_KEY}),
        UPSTAGE_INGEST_INPUT=str(inbox),
        UPSTAGE_INGEST_OUTPUT=str(lake),
        UPSTAGE_POLL_INTERVAL="1",
    )
    return env


def run(cmd: list[str], env: dict[str, str], log_file: Path) -> None:
    with log_file.open("a") as log:
        proc = subprocess.run(cmd, env=env, stdout=log, stderr=subprocess.STDOUT, check=False)
    if proc.returncode != 0:
        tail = log_file.read_text().splitlines()[-40:]
        print("\n".join(tail), file=sys.stderr)
        raise SystemExit(f"`{' '.join(Path(c).name for c in cmd[:3])}` failed; full log: {log_file}")


def start_emulator() -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(
        [str(BIN / "upstage-emulator"), "--host", "127.0.0.1", "--port", "0", "--api-key", DEMO_KEY],
        stdout=subprocess.PIPE,
        stderr=(OUT / "emulator.log").open("w"),
        text=True,
    )
    assert proc.stdout is not None
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if "listening on" in line:
            return proc, line.strip().rsplit(" ", 1)[-1]
        if not line and proc.poll() is not None:
            break
    proc.kill()
    raise SystemExit(f"the emulator did not start; see {OUT / 'emulator.log'}")


def scanned_pdf(pages: int, title: str) -> bytes:
    """A multi-page scan: text rendered into images at 150 DPI, so the emulator has to OCR it."""
    from PIL import Image, ImageDraw, ImageFont

    font = ImageFont.load_default(size=30)
    images = []
    for n in range(1, pages + 1):
        img = Image.new("L", (1240, 1754), 255)
        draw = ImageDraw.Draw(img)
        draw.text((120, 120), f"{title} - page {n} of {pages}", font=ImageFont.load_default(size=44))
        for row in range(14):
            draw.text(
                (120, 260 + row * 95),
                f"Item {row + 1}: invoice {1000 + n * 20 + row} total {n * 37 + row} EUR",
                font=font,
            )
        images.append(img.convert("RGB"))
    buf = io.BytesIO()
    images[0].save(buf, format="PDF", save_all=True, append_images=images[1:], resolution=150)
    return buf.getvalue()


def summarize(lake: Path, partition: str) -> None:
    import pyarrow.compute as pc
    import pyarrow.dataset as pads

    words_dir, pages_dir = lake / "words" / partition, lake / "pages" / partition
    words = pads.dataset(words_dir, format="parquet").to_table(columns=["document_uri", "confidence"])
    pages = pads.dataset(pages_dir, format="parquet").to_table(columns=["document_uri", "page"])
    page_counts = dict(
        (r["document_uri"], r["page_count"])
        for r in pages.group_by("document_uri").aggregate([("page", "count")]).to_pylist()
    )
    stats = words.group_by("document_uri").aggregate([("confidence", "count"), ("confidence", "mean")])
    print(f"  words/{partition} : {len(list(words_dir.glob('*.parquet')))} files, {words.num_rows} rows")
    print(f"  pages/{partition} : {len(list(pages_dir.glob('*.parquet')))} files, {pages.num_rows} rows\n")
    print(f"  {'document':32} {'pages':>5} {'words':>6} {'mean confidence':>16}")
    for row in sorted(stats.to_pylist(), key=lambda r: r["document_uri"]):
        name = Path(row["document_uri"]).name
        print(
            f"  {name:32} {page_counts.get(row['document_uri'], 0):5d} {row['confidence_count']:6d} "
            f"{row['confidence_mean']:16.3f}"
        )
    print(
        f"  {'all':32} {pages.num_rows:5d} {words.num_rows:6d} {pc.mean(words['confidence']).as_py():16.3f}"
    )


def render_boxes(lake: Path, partition: str, image_path: Path, out: Path) -> Path:
    import pyarrow.dataset as pads
    from PIL import Image, ImageDraw

    table = pads.dataset(lake / "words" / partition, format="parquet").to_table(
        filter=(pads.field("document_uri") == str(image_path)) & (pads.field("page") == 1),
        columns=["polygon", "confidence"],
    )
    img = Image.open(image_path).convert("RGB")
    draw = ImageDraw.Draw(img)
    for row in table.to_pylist():
        points = [(p["x"] * img.width, p["y"] * img.height) for p in row["polygon"]]
        colour = GREEN if (row["confidence"] or 0) >= CONFIDENT else RED
        draw.polygon(points, outline=colour, width=2)
    _with_legend(img).save(out)
    return out


def _with_legend(img: Any) -> Any:
    """The image with a strip below it saying what the box colours mean."""
    from PIL import Image, ImageDraw, ImageFont

    font = ImageFont.load_default(size=max(14, img.width // 60))
    strip = max(32, img.width // 25)
    out = Image.new("RGB", (img.width, img.height + strip), "white")
    out.paste(img, (0, 0))
    draw = ImageDraw.Draw(out)
    x, y, side = strip // 3, img.height + strip // 4, strip // 2
    for colour, label in ((GREEN, f"confidence >= {CONFIDENT}"), (RED, f"confidence < {CONFIDENT}")):
        draw.rectangle((x, y, x + side, y + side), outline=colour, width=3)
        draw.text((x + side + 8, y), label, fill="black", font=font)
        x += side + 16 + int(draw.textlength(label, font=font)) + strip
    return out


if __name__ == "__main__":
    raise SystemExit(main())

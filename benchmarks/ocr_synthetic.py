"""Synthetic documents with known words, to measure the emulator's OCR on kinds the real samples lack.

The four recorded Upstage samples are clean scans; the documents users send are also phone photos
of receipts (at an angle, under uneven light, in faint thermal print), ruled tables, low-resolution
scans and Korean pages. This module draws such documents from seeded random content (Korean,
English, digits, prices, dates) and writes, with each, the words it drew in the recorded Upstage
response shape: ``pages[].words[]`` with ``text``, ``confidence`` and ``boundingBox.vertices``,
four integer pixels clockwise from the word's own top-left, around the word's ink plus about two
pixels (as Upstage's boxes are). Photographed documents' vertices go through the same perspective
as their pixels, so a turned word has a turned quad. The engine is then scored against that truth
with ``ocr_agreement``'s code path (engine -> ``build_ocr_response`` JSON -> ``score``).

    python benchmarks/ocr_synthetic.py                        # every kind, 3 documents each (about a minute)
    python benchmarks/ocr_synthetic.py --kinds table,receipt_photo --count 4 --seed 7
    python benchmarks/ocr_synthetic.py --save /tmp/synthetic --generate-only   # just look at them

The same seed gives the same documents byte for byte (on the same fonts and Pillow). The fonts are
Debian's ``fonts-nanum`` and ``fonts-noto-cjk`` (``make system-deps``).
"""

from __future__ import annotations

import argparse
import io
import json
import math
import random
import sys
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont

sys.path.insert(0, str(Path(__file__).resolve().parent))

from ocr_agreement import AgreementScore, Run, run_engine, score, warm_up

NANUM = Path("/usr/share/fonts/truetype/nanum")
NOTO = Path("/usr/share/fonts/opentype/noto")
NOTO_KR = 1  # the Korean face's index in the Noto CJK collections
# Upstage's boxes hold the ink plus about two pixels on every side.
BOX_PADDING = 2.0
# An anti-aliased pixel counts as ink from this coverage on (0..255).
INK_LEVEL = 96
DEFAULT_KINDS = ("receipt_photo", "receipt_angled", "table", "scan_75dpi", "korean_page")

Point = tuple[float, float]
Quad = tuple[Point, Point, Point, Point]


# --- content ---------------------------------------------------------------------------------

# fmt: off
STORES = (
    "스타벅스 강남점", "이마트24 역삼점", "GS25 선릉점", "CU 삼성점", "파리바게뜨", "김밥천국",
    "올리브영 신촌점", "홈플러스 익스프레스", "롯데마트 잠실점", "다이소 홍대점", "세븐일레븐",
    "맘스터치 판교점", "교보문고 광화문점", "BBQ치킨 수원점", "할리스커피", "투썸플레이스",
)
ITEMS = (
    "아메리카노", "카페라떼", "바닐라라떼", "생수", "우유", "삼각김밥", "참치김밥", "신라면",
    "바나나", "사과", "계란", "두부", "콜라", "사이다", "샌드위치", "떡볶이", "어묵", "순대",
    "초코우유", "녹차", "비닐봉투", "치즈케이크", "크루아상", "볼펜", "건전지", "물티슈",
    "Americano", "Latte", "Bagel", "Cookie", "Muffin", "Coke", "Water", "Sandwich",
)
STREETS = ("테헤란로", "강남대로", "세종대로", "올림픽로", "해운대로", "중앙대로", "판교역로")
DISTRICTS = (
    ("서울특별시", "강남구"), ("서울특별시", "마포구"), ("서울특별시", "종로구"),
    ("부산광역시", "해운대구"), ("경기도", "성남시"), ("인천광역시", "연수구"),
)
NAMES = ("김민수", "이서연", "박지훈", "최수빈", "정우진", "강하은", "조현우", "윤지아")
KOREAN_PROSE = (
    "우리는", "오늘", "회의에서", "새로운", "계획을", "논의했습니다", "이번", "분기의", "매출은",
    "지난해보다", "크게", "늘었습니다", "고객의", "의견을", "반영하여", "서비스를", "개선하고",
    "있습니다", "모든", "직원은", "안전", "교육을", "받아야", "합니다", "회사는", "내년에",
    "해외", "시장에", "진출할", "예정입니다", "자료는", "첨부된", "파일을", "참고하시기",
    "바랍니다", "문의", "사항은", "담당자에게", "연락해", "주십시오", "프로젝트", "일정이",
    "변경되었습니다", "보고서를", "제출해", "주세요", "시스템", "점검으로", "서비스가",
    "잠시", "중단됩니다", "감사합니다", "정부는", "경제", "정책을", "발표했다", "시민들은",
    "공원에서", "산책을", "즐겼다", "학생들이", "도서관에서", "공부하고", "있다", "날씨가",
    "맑고", "따뜻하다", "데이터", "분석", "결과를", "공유합니다", "그리고", "하지만", "또한",
)
ENGLISH_PROSE = (
    "the", "quarterly", "report", "shows", "that", "revenue", "grew", "across", "all", "regions",
    "while", "operating", "costs", "remained", "stable", "our", "team", "will", "review", "results",
    "with", "each", "customer", "before", "next", "month", "please", "send", "your", "comments",
    "by", "Friday", "this", "document", "describes", "process", "for", "submitting", "invoices",
    "and", "receipts", "payment", "is", "due", "within", "days", "of", "receipt", "any", "questions",
    "should", "be", "directed", "to", "office", "account", "manager", "in", "addition", "new",
    "policy", "applies", "from", "January", "contract", "terms", "were", "agreed", "upon", "both",
    "parties", "signed", "agreement", "on", "behalf", "company", "total", "amount", "includes",
    "tax", "shipping", "delivery", "schedule", "may", "change", "without", "notice", "service",
)
# Column sets of real-looking tables: an item or name column, codes and dates, then numbers.
TABLE_LAYOUTS = (
    ("No", "품명", "코드", "수량", "단가", "금액", "비고"),
    ("No", "Item", "Code", "Qty", "Price", "Amount"),
    ("날짜", "품명", "지역", "수량", "금액", "상태"),
    ("Date", "Item", "Region", "Qty", "Amount", "Status"),
    ("담당자", "지역", "품명", "단가", "수량", "금액"),
    ("No", "날짜", "담당자", "Item", "Amount", "비고"),
)
REGIONS = ("서울", "부산", "대구", "인천", "광주", "대전", "Seoul", "Busan")
STATUSES = ("완료", "진행", "대기", "취소", "Done", "Open", "Hold")
# fmt: on


def price(rnd: random.Random, low: int = 5, high: int = 600) -> str:
    """A won amount like 12,500 (hundreds of won, with thousands separators)."""
    return f"{rnd.randint(low, high) * 100:,}"


def date(rnd: random.Random) -> str:
    return f"{rnd.randint(2021, 2025)}-{rnd.randint(1, 12):02d}-{rnd.randint(1, 28):02d}"


def clock(rnd: random.Random) -> str:
    return f"{rnd.randint(7, 22):02d}:{rnd.randint(0, 59):02d}:{rnd.randint(0, 59):02d}"


# --- drawing words with their truth ----------------------------------------------------------


@dataclass(frozen=True)
class Word:
    """A drawn word: its text and its ink box in the canvas it was drawn on."""

    text: str
    box: tuple[float, float, float, float]


def font(name: str, size: int) -> ImageFont.FreeTypeFont:
    """One of the Debian fonts by file name; Noto collections open on their Korean face."""
    path = (NOTO if name.endswith(".ttc") else NANUM) / name
    if not path.is_file():
        raise SystemExit(f"{path}: font missing; run `make system-deps` (fonts-nanum, fonts-noto-cjk)")
    return ImageFont.truetype(str(path), size, index=NOTO_KR if name.endswith(".ttc") else 0)


SANS = ("NanumGothic.ttf", "NanumBarunGothic.ttf", "NotoSansCJK-Regular.ttc", "NanumSquareR.ttf")
SANS_BOLD = ("NanumGothicBold.ttf", "NanumBarunGothicBold.ttf", "NotoSansCJK-Bold.ttc")
SERIF = ("NanumMyeongjo.ttf", "NotoSerifCJK-Regular.ttc")
MONO = ("NanumGothicCoding.ttf",)


class Canvas:
    """An ink coverage layer (0..255) that remembers each drawn word's ink box."""

    def __init__(self, width: int, height: int) -> None:
        self.ink = Image.new("L", (width, height), 0)
        self.words: list[Word] = []
        self.lines: list[list[Word]] = []

    def width_of(self, text: str, face: ImageFont.FreeTypeFont) -> float:
        return float(face.getlength(text))

    def text(self, x: float, baseline: float, text: str, face: ImageFont.FreeTypeFont) -> float:
        """Draw space-separated words from (x, baseline) as one line; returns where it ended."""
        space = face.getlength(" ")
        line: list[Word] = []
        for token in text.split():
            left, top, right, bottom = (math.floor(v) for v in face.getbbox(token, anchor="ls"))
            pad = 3
            tile = Image.new("L", (right - left + 2 * pad, bottom - top + 2 * pad), 0)
            ImageDraw.Draw(tile).text((pad - left, pad - top), token, font=face, fill=255, anchor="ls")
            ox, oy = round(x) + left - pad, round(baseline) + top - pad
            found = tile.point(lambda v: 255 if v >= INK_LEVEL else 0).getbbox()
            if found:
                region = (ox, oy, ox + tile.width, oy + tile.height)
                under = self.ink.crop(region)
                self.ink.paste(Image.fromarray(np.maximum(np.asarray(under), np.asarray(tile))), region[:2])
                word = Word(token, (ox + found[0], oy + found[1], ox + found[2], oy + found[3]))
                line.append(word)
                self.words.append(word)
            x += face.getlength(token) + space
        if line:
            self.lines.append(line)
        return x - space

    def text_right(self, right: float, baseline: float, text: str, face: ImageFont.FreeTypeFont) -> None:
        self.text(right - self.width_of(text, face), baseline, text, face)

    def text_center(self, center: float, baseline: float, text: str, face: ImageFont.FreeTypeFont) -> None:
        self.text(center - self.width_of(text, face) / 2, baseline, text, face)

    def rule(self, box: tuple[float, float, float, float], *, dashed: float = 0.0) -> None:
        """A solid or dashed ruling (drawn ink, not a word)."""
        draw = ImageDraw.Draw(self.ink)
        left, top, right, bottom = box
        if not dashed:
            draw.rectangle((left, top, right - 1, bottom - 1), fill=255)
            return
        x = left
        while x < right:
            draw.rectangle((x, top, min(right, x + dashed) - 1, bottom - 1), fill=255)
            x += 2 * dashed


# --- homographies ----------------------------------------------------------------------------


def homography(src: Sequence[Point], dst: Sequence[Point]) -> np.ndarray:
    """The 3x3 projective map taking the four ``src`` points to the four ``dst`` points."""
    rows, rhs = [], []
    for (x, y), (u, v) in zip(src, dst, strict=True):
        rows.append([x, y, 1, 0, 0, 0, -u * x, -u * y])
        rows.append([0, 0, 0, x, y, 1, -v * x, -v * y])
        rhs += [u, v]
    h = np.linalg.solve(np.array(rows, dtype=float), np.array(rhs, dtype=float))
    return np.append(h, 1.0).reshape(3, 3)


def apply(h: np.ndarray, x: float, y: float) -> Point:
    u, v, w = h @ np.array([x, y, 1.0])
    return (float(u / w), float(v / w))


def warp(
    image: Image.Image, h: np.ndarray, size: tuple[int, int], fill: int | tuple[int, ...]
) -> Image.Image:
    """``image`` seen through ``h`` on a canvas of ``size`` (PIL wants the inverse map)."""
    inverse = np.linalg.inv(h)
    inverse = inverse / inverse[2, 2]
    coefficients = tuple(float(v) for v in inverse.flatten()[:8])
    return image.transform(
        size, Image.Transform.PERSPECTIVE, coefficients, Image.Resampling.BICUBIC, fillcolor=fill
    )


# --- the truth as an Upstage response ---------------------------------------------------------


def quad_of(
    box: tuple[float, float, float, float], pad: float, to_page: Callable[[float, float], Point]
) -> Quad:
    """The padded box's corners clockwise from its top-left, mapped into the page."""
    left, top, right, bottom = box
    corners = (
        (left - pad, top - pad),
        (right + pad, top - pad),
        (right + pad, bottom + pad),
        (left - pad, bottom + pad),
    )
    return tuple(to_page(x, y) for x, y in corners)  # type: ignore[return-value]


def truth_response(width: int, height: int, lines: Sequence[Sequence[tuple[str, Quad]]]) -> dict[str, Any]:
    """The drawn words in the recorded camelCase response shape (confidence 1: they are known)."""

    def clamp(value: float, size: int) -> int:
        return max(0, min(size - 1, round(value)))

    words: list[dict[str, Any]] = []
    for line in lines:
        for text, quad in line:
            words.append(
                {
                    "boundingBox": {
                        "vertices": [{"x": clamp(x, width), "y": clamp(y, height)} for x, y in quad]
                    },
                    "confidence": 1.0,
                    "id": len(words),
                    "text": text,
                }
            )
    text = " \n".join(" ".join(t for t, _ in line) for line in lines if line)
    return {
        "apiVersion": "1.1",
        "confidence": 1.0,
        "metadata": {"pages": [{"height": height, "page": 1, "width": width}]},
        "mimeType": "multipart/form-data",
        "modelVersion": "synthetic",
        "numBilledPages": 1,
        "pages": [
            {"confidence": 1.0, "height": height, "id": 0, "text": text, "width": width, "words": words}
        ],
        "stored": False,
        "text": text,
    }


@dataclass(frozen=True)
class Synthetic:
    """One generated document: its file bytes and the words on it."""

    name: str
    data: bytes
    truth: dict[str, Any]


def encode(image: Image.Image, fmt: str, **options: Any) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


def smooth_noise(rng: np.random.Generator, size: tuple[int, int], cells: int) -> np.ndarray:
    """Low-frequency noise in -1..1 (a coarse random grid, smoothly upsampled)."""
    width, height = size
    grid = rng.uniform(0, 255, (max(2, cells * height // width), cells)).astype(np.uint8)
    big = Image.fromarray(grid).resize((width, height), Image.Resampling.BICUBIC)
    return np.asarray(big, dtype=np.float32) / 127.5 - 1.0


# --- receipts --------------------------------------------------------------------------------

RECEIPT_PX_PER_MM = 7.0  # the paper is drawn at ~180 DPI, then photographed


def draw_receipt(rnd: random.Random) -> Canvas:
    """A Korean store receipt, 58 or 80 mm wide, in small thermal-printer type."""
    width_mm = rnd.choice((58, 80, 80))
    width = round(width_mm * RECEIPT_PX_PER_MM)
    margin = round(3.5 * RECEIPT_PX_PER_MM)
    size = round(rnd.uniform(2.3, 3.0) * RECEIPT_PX_PER_MM * (0.85 if width_mm == 58 else 1.0))
    family = rnd.choice((MONO[0], SANS[0], SANS[1], SANS[2]))
    body = font(family, size)
    bold = font(rnd.choice(SANS_BOLD), round(size * rnd.uniform(1.5, 1.9)))
    small = font(family, round(size * 0.85))
    items = [
        (rnd.choice(ITEMS), rnd.randint(1, 3), int(price(rnd, 8, 120).replace(",", "")))
        for _ in range(rnd.randint(4, 9))
    ]
    height = round((34 + 2.2 * len(items)) * size * 1.45)
    canvas = Canvas(width, height)
    left, right, center = margin, width - margin, width / 2
    step = size * 1.45
    y = margin + bold.size
    canvas.text_center(center, y, rnd.choice(STORES), bold)
    y += bold.size * 1.2
    city, district = rnd.choice(DISTRICTS)
    for text in (
        f"사업자번호 {rnd.randint(100, 999)}-{rnd.randint(10, 99)}-{rnd.randint(10000, 99999)}",
        f"대표자 {rnd.choice(NAMES)}",
        f"{city} {district} {rnd.choice(STREETS)} {rnd.randint(1, 500)}",
        f"TEL 0{rnd.randint(2, 64)}-{rnd.randint(200, 999)}-{rnd.randint(1000, 9999)}",
    ):
        y += step
        canvas.text(left, y, text, small)
    y += step
    canvas.text(left, y, f"{date(rnd)} {clock(rnd)}", body)
    canvas.text_right(right, y, f"POS:{rnd.randint(1, 9):02d}", body)
    y += step * 0.6
    canvas.rule((left, y, right, y + 2), dashed=size * 0.3)
    y += step
    quantity_x, amount_x = right - width * 0.30, right
    canvas.text(left, y, "상품명", body)
    canvas.text_right(quantity_x, y, "수량", body)
    canvas.text_right(amount_x, y, "금액", body)
    y += step * 0.6
    canvas.rule((left, y, right, y + 2), dashed=size * 0.3)
    total = 0
    for name, count, unit in items:
        y += step
        canvas.text(left, y, name, body)
        if width_mm == 58:  # a narrow roll puts the unit price on a line of its own
            y += step
            canvas.text(left + size, y, f"{unit:,}", small)
        canvas.text_right(quantity_x, y, str(count), body)
        canvas.text_right(amount_x, y, f"{unit * count:,}", body)
        total += unit * count
    y += step * 0.6
    canvas.rule((left, y, right, y + 2))
    tax = total // 11
    for label, value in (("과세물품", total - tax), ("부가세", tax), ("합계", total)):
        y += step
        face = bold if label == "합계" and rnd.random() < 0.5 else body
        if face is bold:
            y += step * 0.3
        canvas.text(left, y, label, face)
        canvas.text_right(right, y, f"{value:,}", face)
    y += step * 0.6
    canvas.rule((left, y, right, y + 2), dashed=size * 0.3)
    y += step
    canvas.text(left, y, rnd.choice(("신용카드", "카드결제", "현금")), body)
    canvas.text_right(right, y, f"{total:,}", body)
    y += step
    canvas.text(left, y, f"승인번호 {rnd.randint(10000000, 99999999)}", small)
    y += step
    canvas.text(left, y, f"할부 {rnd.choice(('일시불', '03개월'))}", small)
    y += step * 1.6
    canvas.text_center(center, y, rnd.choice(("감사합니다", "이용해 주셔서 감사합니다", "Thank you")), body)
    y += step * 1.5
    canvas.ink = canvas.ink.crop((0, 0, width, min(height, round(y + margin))))
    return canvas


def photograph(rnd: random.Random, canvas: Canvas, name: str, *, angle: float) -> Synthetic:
    """The receipt on a table, photographed with a phone: tilt, perspective, light, blur, noise, JPEG."""
    rng = np.random.default_rng(rnd.getrandbits(64))
    paper_w, paper_h = canvas.ink.size
    # Thermal print: grey, unevenly dark ink on off-white paper.
    ink = np.asarray(canvas.ink, dtype=np.float32) / 255.0
    contrast = rnd.uniform(0.45, 0.8) * (1.0 + 0.15 * smooth_noise(rng, (paper_w, paper_h), 3))
    speckle = 1.0 - 0.35 * rng.random((paper_h, paper_w), dtype=np.float32) ** 3
    paper = np.array([rnd.uniform(232, 250), rnd.uniform(230, 247), rnd.uniform(220, 240)], dtype=np.float32)
    dark = np.array([40.0, 40.0, 48.0], dtype=np.float32)
    alpha = (ink * contrast * speckle)[..., None]
    paper_rgb = paper * (1 - alpha) + dark * alpha
    paper_rgb += 3.0 * smooth_noise(rng, (paper_w, paper_h), 40)[..., None]
    paper_image = Image.fromarray(np.clip(paper_rgb, 0, 255).astype(np.uint8), "RGB")

    # The frame: a phone photo (3:4) holding the turned receipt with a margin.
    photo_w, photo_h = rnd.choice(((1200, 1600), (1080, 1440), (1350, 1800)))
    theta = math.radians(angle)
    turned_w = paper_w * abs(math.cos(theta)) + paper_h * abs(math.sin(theta))
    turned_h = paper_w * abs(math.sin(theta)) + paper_h * abs(math.cos(theta))
    scale = min(photo_w / turned_w, photo_h / turned_h) * rnd.uniform(0.78, 0.92)
    cx = photo_w / 2 + rnd.uniform(-0.04, 0.04) * photo_w
    cy = photo_h / 2 + rnd.uniform(-0.03, 0.03) * photo_h
    src = [(0.0, 0.0), (paper_w, 0.0), (paper_w, paper_h), (0.0, paper_h)]
    keystone = rnd.uniform(-0.05, 0.05)  # the top edge nearer or farther than the bottom one
    dst = []
    for x, y in src:
        sx = (x - paper_w / 2) * scale * (1 + keystone * (1 - 2 * y / paper_h))
        sy = (y - paper_h / 2) * scale
        sx += rnd.uniform(-0.012, 0.012) * paper_w * scale
        sy += rnd.uniform(-0.012, 0.012) * paper_w * scale
        dst.append(
            (
                cx + sx * math.cos(theta) - sy * math.sin(theta),
                cy + sx * math.sin(theta) + sy * math.cos(theta),
            )
        )
    h = homography(src, dst)

    # A table top: a dark, textured, unevenly coloured surface, and the paper's soft shadow.
    base = np.array(
        rnd.choice(((105, 78, 58), (72, 74, 80), (58, 62, 72), (120, 112, 100))), dtype=np.float32
    )
    grain = (
        18 * smooth_noise(rng, (photo_w, photo_h), 6)[..., None]
        + 6 * smooth_noise(rng, (photo_w, photo_h), 120)[..., None]
    )
    background = np.clip(base + grain, 0, 255)
    mask = warp(Image.new("L", (paper_w, paper_h), 255), h, (photo_w, photo_h), 0)
    shadow = mask.filter(ImageFilter.GaussianBlur(18))
    shadow = shadow.transform(shadow.size, Image.Transform.AFFINE, (1, 0, -10, 0, 1, -14))
    background *= 1 - 0.45 * (np.asarray(shadow, dtype=np.float32)[..., None] / 255)
    photo_paper = np.asarray(warp(paper_image, h, (photo_w, photo_h), (0, 0, 0)), dtype=np.float32)
    cover = np.asarray(mask, dtype=np.float32)[..., None] / 255
    photo = background * (1 - cover) + photo_paper * cover

    # Light: a gradient across the frame, a vignette, sometimes a soft shadow of the phone or hand.
    ys, xs = np.mgrid[0:photo_h, 0:photo_w].astype(np.float32)
    direction = rnd.uniform(0, 2 * math.pi)
    along = ((xs - photo_w / 2) * math.cos(direction) + (ys - photo_h / 2) * math.sin(direction)) / max(
        photo_w, photo_h
    )
    light = 1.0 - rnd.uniform(0.15, 0.4) * (along + 0.5)
    radius = ((xs - photo_w / 2) ** 2 + (ys - photo_h / 2) ** 2) / ((photo_w / 2) ** 2 + (photo_h / 2) ** 2)
    light *= 1.0 - rnd.uniform(0.15, 0.35) * radius
    if rnd.random() < 0.5:
        bx, by = rnd.uniform(0, photo_w), rnd.uniform(0, photo_h)
        blob = np.exp(-(((xs - bx) / (0.35 * photo_w)) ** 2 + ((ys - by) / (0.25 * photo_h)) ** 2))
        light *= 1.0 - rnd.uniform(0.15, 0.3) * blob
    photo = photo * light[..., None] * rnd.uniform(0.95, 1.08)
    warm = np.array([1.0 + rnd.uniform(0, 0.06), 1.0, 1.0 - rnd.uniform(0, 0.08)], dtype=np.float32)
    image = Image.fromarray(np.clip(photo * warm, 0, 255).astype(np.uint8), "RGB")
    image = image.filter(ImageFilter.GaussianBlur(rnd.uniform(0.6, 1.2)))
    noisy = np.asarray(image, dtype=np.float32) + rng.normal(0, rnd.uniform(3, 6), (photo_h, photo_w, 1))
    image = Image.fromarray(np.clip(noisy, 0, 255).astype(np.uint8), "RGB")
    data = encode(image, "JPEG", quality=rnd.randint(76, 85))

    pad = BOX_PADDING / scale

    def to_page(x: float, y: float) -> Point:
        return apply(h, x, y)

    lines = [[(w.text, quad_of(w.box, pad, to_page)) for w in line] for line in canvas.lines]
    return Synthetic(name + ".jpg", data, truth_response(photo_w, photo_h, lines))


def receipt_photo(rnd: random.Random, name: str) -> Synthetic:
    return photograph(rnd, draw_receipt(rnd), name, angle=rnd.uniform(-5, 5))


def receipt_angled(rnd: random.Random, name: str) -> Synthetic:
    return photograph(rnd, draw_receipt(rnd), name, angle=rnd.choice((-1, 1)) * rnd.uniform(25, 35))


# --- scanned pages ---------------------------------------------------------------------------

A4_MM = (210, 297)


def scanned(
    rnd: random.Random,
    canvas: Canvas,
    name: str,
    *,
    factor: int,
    fmt: str,
    fill: Image.Image | None = None,
    blur: float = 0.0,
) -> Synthetic:
    """A page drawn ``factor`` times too big, scanned down: anti-aliased, near-white, faint noise.

    ``blur`` (in scanned pixels) is the scanner optics' softness, applied before sampling down.
    """
    rng = np.random.default_rng(rnd.getrandbits(64))
    big_w, big_h = canvas.ink.size
    width, height = big_w // factor, big_h // factor
    ink = np.asarray(canvas.ink, dtype=np.float32) / 255
    paper = rnd.uniform(243, 253)
    shade = np.asarray(fill, dtype=np.float32) if fill is not None else 0.0
    page = (paper - shade) * (1 - ink) + rnd.uniform(15, 40) * ink
    image = Image.fromarray(np.clip(page, 0, 255).astype(np.uint8), "L")
    if blur:
        image = image.filter(ImageFilter.GaussianBlur(blur * factor))
    image = image.resize((width, height), Image.Resampling.BOX)
    noisy = np.asarray(image, dtype=np.float32) + rng.normal(0, rnd.uniform(1.0, 2.5), (height, width))
    image = Image.fromarray(np.clip(noisy, 0, 255).astype(np.uint8), "L")
    data = encode(image, "PNG") if fmt == "png" else encode(image, "JPEG", quality=rnd.randint(85, 93))
    pad = BOX_PADDING * factor

    def to_page(x: float, y: float) -> Point:
        return (x / factor, y / factor)

    lines = [[(w.text, quad_of(w.box, pad, to_page)) for w in line] for line in canvas.lines]
    return Synthetic(f"{name}.{fmt}", data, truth_response(width, height, lines))


def table(rnd: random.Random, name: str) -> Synthetic:
    """A ruled table (header row, Korean and English cells, numbers) on an A4 page scanned at 150 DPI."""
    factor, dpi = 2, 150
    px_per_mm = dpi * factor / 25.4
    width, height = round(A4_MM[0] * px_per_mm), round(A4_MM[1] * px_per_mm)
    canvas = Canvas(width, height)
    fill = Image.new("L", (width, height), 0)
    margin = round(18 * px_per_mm)
    size = round(rnd.uniform(9, 11.5) / 72 * dpi * factor)  # 9-11.5 pt type
    family = rnd.choice(SANS + SERIF)
    body = font(family, size)
    head = font(rnd.choice(SANS_BOLD), size)
    title = font(rnd.choice(SANS_BOLD), round(size * 1.6))
    y = margin + title.size
    canvas.text(
        margin,
        y,
        rnd.choice(("거래 명세서", "월간 판매 현황", "재고 현황표", "Sales Summary", "Order List")),
        title,
    )
    y += title.size * 0.8
    canvas.text_right(width - margin, y + size, f"작성일 {date(rnd)}", body)
    y += size * 2.5
    columns = list(rnd.choice(TABLE_LAYOUTS))
    row_h = round(size * rnd.uniform(1.7, 2.3))
    rows = rnd.randint(12, 24)
    line_w = rnd.choice((2, 2, 3, 4))  # 1-2 px once scanned
    cell_pad = size * rnd.uniform(0.35, 0.6)

    def cell(column: str, row: int) -> tuple[str, bool]:
        """A cell's text and whether it is right-aligned (numbers are)."""
        if column == "No":
            return str(row + 1), True
        if column in ("수량", "Qty"):
            return str(rnd.randint(1, 250)), True
        if column in ("단가", "금액", "Price", "Amount"):
            return price(rnd, 1, 9000), True
        if column in ("날짜", "Date"):
            return date(rnd), False
        if column in ("코드", "Code"):
            return f"{rnd.choice('ABCDKMPX')}-{rnd.randint(100, 9999)}", False
        if column in ("담당자",):
            return rnd.choice(NAMES), False
        if column in ("지역", "Region"):
            return rnd.choice(REGIONS), False
        if column in ("상태", "Status", "비고"):
            return rnd.choice(STATUSES), False
        return rnd.choice(ITEMS), False

    body_rows = [[cell(c, r) for c in columns] for r in range(rows)]
    widths = []
    for index, column in enumerate(columns):
        longest = max(
            [canvas.width_of(column, head)] + [canvas.width_of(r[index][0], body) for r in body_rows]
        )
        widths.append(longest + 2 * cell_pad)
    spare = (width - 2 * margin) - sum(widths)
    widths = [w + spare * w / sum(widths) for w in widths] if spare > 0 else widths
    xs = [float(margin)]
    for w in widths:
        xs.append(xs[-1] + w)
    top = y
    shaded = rnd.random() < 0.6
    if shaded:
        ImageDraw.Draw(fill).rectangle((xs[0], top, xs[-1], top + row_h), fill=rnd.randint(25, 45))
    for r, row in enumerate([[(c, False) for c in columns], *body_rows]):
        baseline = top + r * row_h + (row_h + size * 0.7) / 2
        face = head if r == 0 else body
        for index, (text, right_aligned) in enumerate(row):
            if right_aligned and r:
                canvas.text_right(xs[index + 1] - cell_pad, baseline, text, face)
            elif r == 0:
                canvas.text_center((xs[index] + xs[index + 1]) / 2, baseline, text, face)
            else:
                canvas.text(xs[index] + cell_pad, baseline, text, face)
    bottom = top + (rows + 1) * row_h
    full_grid = rnd.random() < 0.7
    for r in range(rows + 2):
        if full_grid or r in (0, 1, rows + 1):
            yy = top + r * row_h
            canvas.rule((xs[0], yy - line_w / 2, xs[-1] + line_w / 2, yy + line_w / 2))
    if full_grid:
        for x in xs:
            canvas.rule((x - line_w / 2, top, x + line_w / 2, bottom))
    y = bottom + size * 2.5
    canvas.text(margin, y, f"합계 {price(rnd, 1000, 90000)} 원", head)
    return scanned(rnd, canvas, name, factor=factor, fmt=rnd.choice(("png", "jpg")), fill=fill)


def prose_page(
    rnd: random.Random,
    name: str,
    *,
    dpi: int,
    factor: int,
    words: Sequence[str],
    faces: Sequence[str],
    points: tuple[float, float],
    fmt: str = "png",
    blur: float = 0.0,
) -> Synthetic:
    """An A4 page of paragraphs (a title, then justified-left text) scanned at ``dpi``."""
    px_per_mm = dpi * factor / 25.4
    width, height = round(A4_MM[0] * px_per_mm), round(A4_MM[1] * px_per_mm)
    canvas = Canvas(width, height)
    margin = round(rnd.uniform(18, 25) * px_per_mm)
    size = round(rnd.uniform(*points) / 72 * dpi * factor)
    family = rnd.choice(faces)
    body = font(family, size)
    title = font(rnd.choice(SANS_BOLD), round(size * 1.5))
    leading = size * rnd.uniform(1.45, 1.75)
    y = margin + title.size
    canvas.text(margin, y, " ".join(rnd.choice(words).capitalize() for _ in range(rnd.randint(2, 5))), title)
    y += title.size * 1.2
    while y < height - margin - 3 * leading:
        y += leading * 0.8  # paragraph gap
        for _ in range(rnd.randint(3, 7)):
            y += leading
            if y > height - margin:
                break
            tokens: list[str] = []
            while True:
                token = rnd.choice(words)
                roll = rnd.random()
                if roll < 0.06:
                    token = price(rnd, 1, 5000)
                elif roll < 0.09:
                    token = date(rnd)
                elif roll < 0.12:
                    token += rnd.choice((".", ","))
                if canvas.width_of(" ".join([*tokens, token]), body) > width - 2 * margin:
                    break
                tokens.append(token)
            canvas.text(margin, y, " ".join(tokens), body)
    return scanned(rnd, canvas, name, factor=factor, fmt=fmt, blur=blur)


def scan_75dpi(rnd: random.Random, name: str) -> Synthetic:
    """An office scan at 75 DPI: 9-12 pt type is 9-12 pixels high, a little soft, saved as JPEG or PNG."""
    return prose_page(
        rnd,
        name,
        dpi=75,
        factor=4,
        words=ENGLISH_PROSE,
        faces=SERIF + SANS,
        points=(9, 12),
        fmt=rnd.choice(("png", "jpg")),
        blur=rnd.uniform(0.3, 0.6),
    )


def korean_page(rnd: random.Random, name: str) -> Synthetic:
    words = KOREAN_PROSE * 4 + ENGLISH_PROSE[:20]  # mostly Korean, a few English words
    return prose_page(rnd, name, dpi=150, factor=2, words=words, faces=SANS + SERIF, points=(9, 12), blur=0.3)


KINDS: dict[str, Callable[[random.Random, str], Synthetic]] = {
    "receipt_photo": receipt_photo,
    "receipt_angled": receipt_angled,
    "table": table,
    "scan_75dpi": scan_75dpi,
    "korean_page": korean_page,
}


def generate(kind: str, index: int, seed: int) -> Synthetic:
    """Document ``index`` of ``kind`` for ``seed``: the same arguments give the same bytes."""
    return KINDS[kind](random.Random(f"{seed}:{kind}:{index}"), f"{kind}-{index:02d}")


# --- the command line ----------------------------------------------------------------------


@dataclass(frozen=True)
class KindResult:
    kind: str
    documents: int
    found: int
    total: int
    iou_sum: float
    seconds: float

    @property
    def ratio(self) -> float:
        return self.found / self.total if self.total else 1.0

    @property
    def mean_iou(self) -> float:
        return self.iou_sum / self.found if self.found else 0.0


def summarise(kind: str, scored: Sequence[tuple[AgreementScore, Run]]) -> KindResult:
    return KindResult(
        kind,
        len(scored),
        sum(s.found for s, _ in scored),
        sum(s.total for s, _ in scored),
        sum(s.mean_iou * s.found for s, _ in scored),
        sum(r.seconds for _, r in scored),
    )


def _table(results: Sequence[KindResult]) -> str:
    lines = [f"{'kind':<16} {'docs':>4} {'found/total':>12} {'found':>7} {'mean IoU':>9} {'seconds':>8}"]
    for r in results:
        lines.append(
            f"{r.kind:<16} {r.documents:>4} {f'{r.found}/{r.total}':>12} {r.ratio:>7.1%} "
            f"{r.mean_iou:>9.3f} {r.seconds:>8.2f}"
        )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--kinds", default=",".join(DEFAULT_KINDS), help=f"comma-separated, of {', '.join(KINDS)}"
    )
    parser.add_argument("--count", type=int, default=3, help="documents per kind")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--save", help="write each document, its truth (.ocr.json) and the engine's answer here"
    )
    parser.add_argument("--out", help="write the per-kind figures as ocr_synthetic.json into this directory")
    parser.add_argument("--generate-only", action="store_true", help="only generate (with --save)")
    parser.add_argument("--languages", help="the engine's languages (default: its automatic choice)")
    parser.add_argument("--per-doc", action="store_true", help="print each document's score too")
    args = parser.parse_args(argv)
    kinds = [k.strip() for k in args.kinds.split(",") if k.strip()]
    unknown = [k for k in kinds if k not in KINDS]
    if unknown:
        raise SystemExit(f"unknown kind {', '.join(unknown)}; choose from {', '.join(KINDS)}")
    save = Path(args.save) if args.save else None
    if save:
        save.mkdir(parents=True, exist_ok=True)

    engine = None
    if not args.generate_only:
        from upstage_provider.emulator.engine import TesseractEngine

        engine = TesseractEngine(languages=args.languages)
        warm_up(engine)

    results = []
    with tempfile.TemporaryDirectory() as scratch:
        for kind in kinds:
            scored = []
            for index in range(args.count):
                doc = generate(kind, index, args.seed)
                path = (save or Path(scratch)) / doc.name
                path.write_bytes(doc.data)
                stem = path.with_suffix("")
                if save:
                    stem.with_suffix(".ocr.json").write_text(
                        json.dumps(doc.truth, ensure_ascii=False, indent=1)
                    )
                if engine is None:
                    continue
                run = run_engine(engine, path)
                result = score(doc.truth, run.response)
                scored.append((result, run))
                if save:
                    stem.with_suffix(".emulator.json").write_text(
                        json.dumps(run.response, ensure_ascii=False, indent=1)
                    )
                if args.per_doc:
                    print(
                        f"  {doc.name:<24} {result.found:>4}/{result.total:<4} {result.ratio:>7.1%} "
                        f"{run.seconds:>6.2f} s"
                    )
            if engine is not None:
                results.append(summarise(kind, scored))
    if engine is None:
        print(f"generated {args.count} documents of {', '.join(kinds)}" + (f" in {save}" if save else ""))
        return 0
    print(_table(results))
    if args.out:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        figures = {
            r.kind: {
                "documents": r.documents,
                "found": r.found,
                "total": r.total,
                "ratio": round(r.ratio, 4),
                "mean_iou": round(r.mean_iou, 4),
                "seconds": round(r.seconds, 3),
            }
            for r in results
        }
        (out / "ocr_synthetic.json").write_text(
            json.dumps({"seed": args.seed, "count": args.count, "kinds": figures}, indent=2)
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())

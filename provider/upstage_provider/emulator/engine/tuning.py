"""The Tesseract engine's tuning values, each measured on the Upstage samples (docs/emulator.md)."""

# Tesseract is trained on ~300 DPI text; the API's pages are often 150 DPI. Small pages are
# upscaled so their long side reaches this many pixels (an A4 page at ~220 DPI), at most 2x.
TARGET_LONG_SIDE = 2600
MAX_UPSCALE = 2.0
# Upstage's boxes hold the ink plus about two pixels on every side; Tesseract's hug the ink.
# Hangul syllables fill their em square, and there Upstage's boxes sit about one pixel out.
BOX_PADDING = 2.0
HANGUL_BOX_PADDING = 1.0
# Tesseract's Korean model often splits Hangul words into syllables. Neighbours closer than
# this fraction of the line height are one word (word spaces in Hangul run ~0.5-0.7 of it).
HANGUL_JOIN_GAP = 0.4
# Lines with enough gaps are cut at their own largest jump between gap sizes, when it is at
# least HANGUL_MIN_JUMP line heights and falls in this range.
HANGUL_JOIN_RANGE = (0.25, 0.55)
HANGUL_MIN_JUMP = 0.1
# A page read this badly gets a second look: orientation check, sparse-text layout.
POOR_MEAN_CONFIDENCE = 0.6
POOR_WORD_COUNT = 3
# OSD's confidence below which a page is taken as upright (Hangul pages score ~1, Latin 3-11).
MIN_ORIENTATION_CONFIDENCE = 2.5
# Lines whose words average below this are re-read with the extra languages.
RETRY_LINE_CONFIDENCE = 0.7
# Picture regions smaller than this share of the page are not re-read for text.
MIN_REGION_SHARE = 0.005
# A PDF page whose images cover this much of it is OCRed from its rendering, text layer or not.
SCANNED_PAGE_IMAGE_COVER = 0.25
# Skew: pages are measured at this long side (text lines stay a few pixels tall), on a coarse
# then a fine grid of angles (degrees); an angle counts only when it sharpens the ink profile
# by this factor over the page as it is, and when the sharpest angle's profile is this many
# times the median angle's (text pages score 7-60, noise and photos without text 1.1-1.6).
# Pages are turned only past SKEW_MIN_DEGREES
# (Tesseract's own layout rides out smaller skews: the fast path for upright scans).
SKEW_SIDE = 800
SKEW_COARSE_STEP = 1.0
SKEW_FINE_STEP = 0.2
SKEW_MIN_GAIN = 1.15
SKEW_MIN_PEAK = 3.0
SKEW_MIN_DEGREES = 1.5
# Light: the background is estimated at this long side; a page whose background spans this many
# grey levels (5th to 95th percentile) is evened out before reading (scans span a few levels).
LIGHT_SIDE = 600
LIGHT_CHECK_SIDE = 300  # the first, cheap look at whether a page needs it
LIGHT_MIN_SPREAD = 40
# Where the background is darker than this share of the brightest paper, it is not paper (a
# desk, a hand): it turns white. The print's darkest percentile becomes black.
LIGHT_OFF_PAPER = 0.6
LIGHT_INK_PERCENTILE = 0.5

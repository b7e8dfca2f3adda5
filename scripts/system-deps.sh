#!/usr/bin/env bash
# Installs the Debian packages the emulator can use: LibreOffice renders office formats
# (DOCX, PPTX, XLSX, HWP), tesseract-ocr-kor adds Korean OCR, the Nanum and Noto CJK fonts draw the
# synthetic documents of benchmarks/ocr_synthetic.py, PostgreSQL serves the Iceberg SQL-catalog
# tests, and Chromium runs the UI test of the connection form (tests/ui, through
# Playwright, which never downloads a browser of its own). Only as root with apt-get;
# otherwise it says what to install and the suite uses what is there.
set -euo pipefail
need=()
command -v soffice >/dev/null 2>&1 || need+=(libreoffice-writer-nogui libreoffice-calc-nogui libreoffice-impress-nogui)
ls /usr/share/tesseract-ocr/*/tessdata/kor.traineddata >/dev/null 2>&1 || need+=(tesseract-ocr-kor)
[ -f /usr/share/fonts/truetype/nanum/NanumGothic.ttf ] || need+=(fonts-nanum)
[ -f /usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc ] || need+=(fonts-noto-cjk)
ls /usr/lib/postgresql/*/bin/pg_ctl >/dev/null 2>&1 || need+=(postgresql)
[ -x /usr/bin/chromium ] || need+=(chromium)
[ ${#need[@]} -eq 0 ] && exit 0
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "system-deps: installing ${need[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null
  apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
else
  echo "system-deps: missing ${need[*]}; install them with: sudo apt-get install ${need[*]}" >&2
  exit 1
fi

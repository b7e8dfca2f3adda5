"""The Upstage OCR hook and what it delegates to: downloads, HTTP clients in the triggerer."""

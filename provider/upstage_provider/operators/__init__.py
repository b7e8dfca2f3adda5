"""Operators: submit a document for async OCR, or OCR it end to end in one task."""

"""Masking the API key in task and triggerer logs, whatever Airflow version masks it."""

from __future__ import annotations


def mask(secret: str) -> None:
    """Mask ``secret`` in this process's logs (a worker's task)."""
    try:
        from airflow.sdk.log import mask_secret
    except ImportError:  # pragma: no cover - older task SDKs
        return
    mask_secret(secret)


async def amask(secret: str) -> None:
    """Masking from the triggerer's loop must not block it on a synchronous supervisor call."""
    try:
        from airflow.sdk.log import amask_secret
    except ImportError:  # pragma: no cover - Airflow 3.1
        mask(secret)
        return
    await amask_secret(secret)

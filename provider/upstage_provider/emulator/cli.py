"""``upstage-emulator``: serve the local Upstage-compatible API from the command line.

Settings come, lowest to highest precedence, from the defaults, a JSON file (``--config``),
``UPSTAGE_EMULATOR_API_KEY`` (the key only) and the flags.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
from collections.abc import Sequence
from typing import Any

from upstage_provider.emulator.config import (
    BATCH_PAGE_IDS,
    DEFAULT_RATE_LIMIT_PPM,
    DEFAULT_RATE_LIMIT_RPM,
    DEFAULT_RATE_LIMIT_RPS,
    ENGINES,
    ERROR_STYLES,
    FAULT_ENDPOINTS,
    EmulatorConfig,
    load_config_file,
)

API_KEY_ENV = "UPSTAGE_EMULATOR_API_KEY"

EPILOG = f"""\
JSON config file (--config): one object; flags override it. Server keys:
  api_key (string), url_ttl (s, default 900), batch_size (pages per async batch, 10),
  workers (async worker threads, 2), snake_case (bool), error_style ({" | ".join(ERROR_STYLES)}),
  batch_page_ids ({" | ".join(BATCH_PAGE_IDS)}), model_version ("ocr-2.2.1"),
  engine ({" | ".join(ENGINES)}), rate_limit_rps ({DEFAULT_RATE_LIMIT_RPS}), rate_limit_rpm
  ({DEFAULT_RATE_LIMIT_RPM}), rate_limit_ppm ({DEFAULT_RATE_LIMIT_PPM}) (per API key; 0: no limit).
Fault keys, at the top level or inside a "faults" object:
  latency_per_request (s), latency_per_page (s), rate_429 (0..1), retry_after (s or null:
  no Retry-After header), rate_5xx (0..1), status_5xx (503), burst_5xx (int: that many 5xx
  in a row before every served call), rate_reset (0..1: downloads cut after half the body),
  rate_stall (0..1: downloads paused after half the body), stall_seconds (s, 5), fail_batches (list of 0-based
  batch indexes), fail_request_message (string: every async request fails with it),
  endpoints (subset of {list(FAULT_ENDPOINTS)}: where 429/5xx/latency_per_request apply),
  seed (int, 0).
Example: {{"rate_429": 0.2, "retry_after": 1, "fail_batches": [2], "seed": 7}}

The API key may also come from ${API_KEY_ENV}. Without a key any non-empty bearer token is
accepted. Once serving, one line "Upstage emulator listening on http://HOST:PORT" is printed.
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="upstage-emulator",
        description="A local emulator of the Upstage OCR API: sync, async batches, signed URLs, faults.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add = parser.add_argument
    add("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    add("--port", type=int, default=8765, help="port to bind; 0 picks a free one (default 8765)")
    add("--api-key", help=f"the bearer key clients must send (default: ${API_KEY_ENV})")
    add("--config", metavar="FILE", help="JSON file of server and fault settings (keys below)")
    add("--engine", choices=ENGINES, help="OCR engine: tesseract (real OCR, default) or synthetic (no OCR)")
    add("--words-per-page", type=int, default=300, help="synthetic engine: words per page (default 300)")
    add("--url-ttl", type=float, metavar="S", help="lifetime of download URLs in seconds (default 900)")
    add("--workers", type=int, metavar="N", help="async worker threads (default 2)")
    add("--batch-size", type=int, metavar="N", help="pages per async batch (default 10)")
    add("--snake-case", action="store_true", default=None, help="answer the snake_case response variant")
    add("--error-style", choices=ERROR_STYLES, help="error body shape (default openai)")
    add("--batch-page-ids", choices=BATCH_PAGE_IDS, help="page ids in downloaded batches (default relative)")
    add("--model-version", help="modelVersion reported for model=ocr (default ocr-2.2.1)")
    limits = parser.add_argument_group(
        "rate limits", "per API key, on sync OCR and async submissions (not status or downloads); 0: no limit"
    )
    ladd = limits.add_argument
    ladd(
        "--rate-limit-rps",
        type=int,
        metavar="N",
        help=f"requests per second (default {DEFAULT_RATE_LIMIT_RPS}, Upstage's documented ocr limit)",
    )
    ladd(
        "--rate-limit-rpm",
        type=int,
        metavar="N",
        help=f"requests per minute (default {DEFAULT_RATE_LIMIT_RPM})",
    )
    ladd(
        "--rate-limit-ppm", type=int, metavar="N", help=f"pages per minute (default {DEFAULT_RATE_LIMIT_PPM})"
    )
    faults = parser.add_argument_group("faults")
    fadd = faults.add_argument
    fadd("--latency-per-request", type=float, metavar="S", help="added to every faulted call")
    fadd("--latency-per-page", type=float, metavar="S", help="added per page of OCR work")
    fadd("--rate-429", type=float, metavar="P", help="share of calls answered 429 (0..1)")
    fadd("--retry-after", type=float, metavar="S", help="Retry-After seconds on 429s (default: no header)")
    fadd("--rate-5xx", type=float, metavar="P", help="share of calls answered 5xx (0..1)")
    fadd("--status-5xx", type=int, metavar="CODE", help="the 5xx status to answer (default 503)")
    fadd("--burst-5xx", type=int, metavar="N", help="5xx answers in a row before every served call")
    fadd("--rate-reset", type=float, metavar="P", help="share of downloads cut after half the body (0..1)")
    fadd("--rate-stall", type=float, metavar="P", help="share of downloads paused after half the body")
    fadd("--stall-seconds", type=float, metavar="S", help="length of a download stall (default 5)")
    fadd(
        "--fail-batch", type=int, action="extend", nargs="+", metavar="N", help="0-based batch index to fail"
    )
    fadd("--fail-request", metavar="MESSAGE", help="fail every async request with this message")
    fadd(
        "--fault-endpoints",
        nargs="+",
        choices=FAULT_ENDPOINTS,
        help="endpoints faults apply to (default all)",
    )
    fadd("--seed", type=int, help="seed of the fault decisions (default 0)")
    add("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"], help="default INFO")
    return parser


_SERVER_FLAGS = {
    "url_ttl": "url_ttl",
    "workers": "workers",
    "batch_size": "batch_size",
    "snake_case": "snake_case",
    "error_style": "error_style",
    "batch_page_ids": "batch_page_ids",
    "model_version": "model_version",
    "engine": "engine",
    "rate_limit_rps": "rate_limit_rps",
    "rate_limit_rpm": "rate_limit_rpm",
    "rate_limit_ppm": "rate_limit_ppm",
}
_FAULT_FLAGS = {
    "latency_per_request": "latency_per_request",
    "latency_per_page": "latency_per_page",
    "rate_429": "rate_429",
    "retry_after": "retry_after",
    "rate_5xx": "rate_5xx",
    "status_5xx": "status_5xx",
    "burst_5xx": "burst_5xx",
    "rate_reset": "rate_reset",
    "rate_stall": "rate_stall",
    "stall_seconds": "stall_seconds",
    "fail_batch": "fail_batches",
    "fail_request": "fail_request_message",
    "fault_endpoints": "endpoints",
    "seed": "seed",
}


def config_from_args(args: argparse.Namespace, environ: dict[str, str] | None = None) -> EmulatorConfig:
    """Merge defaults, the JSON file, the environment and the flags into one config."""
    environ = dict(os.environ) if environ is None else environ
    data: dict[str, Any] = load_config_file(args.config) if args.config else {}
    faults = dict(data.pop("faults", None) or {})
    if environ.get(API_KEY_ENV):
        data["api_key"] = environ[API_KEY_ENV]
    if args.api_key:
        data["api_key"] = args.api_key
    for flag, key in _SERVER_FLAGS.items():
        value = getattr(args, flag)
        if value is not None:
            data[key] = value
    for flag, key in _FAULT_FLAGS.items():
        value = getattr(args, flag)
        if value is not None:
            data.pop(key, None)  # a flag wins over the same key at the top level of the file
            faults[key] = value
    data["faults"] = faults
    return EmulatorConfig.from_mapping(data)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=getattr(logging, args.log_level),
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        config = config_from_args(args)
    except (OSError, ValueError, TypeError) as exc:
        parser.error(str(exc))
    try:
        from upstage_provider.emulator.app import engine_named
        from upstage_provider.emulator.server import run
    except ImportError as exc:
        print(
            f"upstage-emulator: {exc.name or exc} is not installed; the emulator needs the [emulator] "
            "extra: pip install 'airflow-provider-upstage[emulator]'",
            file=sys.stderr,
        )
        return 2

    options = {"words_per_page": args.words_per_page} if config.engine == "synthetic" else {}
    try:
        engine = engine_named(config.engine, **options)
    except Exception as exc:
        print(f"upstage-emulator: cannot start the {config.engine} engine: {exc}", file=sys.stderr)
        return 2
    logging.getLogger(__name__).info(
        "engine %s, %d workers, batches of %d pages, URLs valid %.0f s, rate limits per key "
        "%d/s %d/min %d pages/min (0: none), faults %s",
        config.engine, config.workers, config.batch_size, config.url_ttl, config.rate_limit_rps,
        config.rate_limit_rpm, config.rate_limit_ppm, config.faults.to_dict(),
    )  # fmt: skip
    # SIGTERM ends the server like Ctrl-C does: uvicorn handles it while serving and re-raises
    # it afterwards, and this handler then turns it into a clean exit.
    signal.signal(signal.SIGTERM, _exit_cleanly)
    try:
        run(config, args.host, args.port, engine=engine)
    except KeyboardInterrupt:
        pass
    except OSError as exc:
        print(f"upstage-emulator: cannot listen on {args.host}:{args.port}: {exc}", file=sys.stderr)
        return 1
    return 0


def _exit_cleanly(signum: int, frame: object) -> None:
    raise SystemExit(0)


if __name__ == "__main__":
    sys.exit(main())

"""Child process for the trigger-restart scenario: one UpstageOCRTrigger run, its event as JSON.

``python -m tests.reliability.proc_trigger '<serialized kwargs as JSON>'`` builds the trigger the
way a triggerer does after a restart (from the kwargs ``serialize()`` produced), runs it to its
single terminal event, and prints ``EVENT <json>``. With ``-`` instead of the JSON it first imports
everything, prints ``READY`` and reads the JSON from one line of stdin: importing Airflow takes
seconds on a busy machine, and a pre-started process lets the parent time the kill by the request,
not by the import. It prints ``POLLING`` when the trigger starts.
"""

from __future__ import annotations

import asyncio
import json
import sys

from upstage_provider.triggers.ocr import UpstageOCRTrigger


async def _run(kwargs: dict) -> list[dict]:
    trigger = UpstageOCRTrigger(**kwargs)
    print("POLLING", flush=True)
    return [event.payload async for event in trigger.run()]


def main() -> None:
    text = sys.argv[1]
    if text == "-":
        print("READY", flush=True)
        text = sys.stdin.readline()
    events = asyncio.run(_run(json.loads(text)))
    print("EVENT " + json.dumps(events), flush=True)


if __name__ == "__main__":
    main()

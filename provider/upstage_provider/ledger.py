"""The submission ledger: which Upstage request a task instance's document went to, across its tries.

A retry (or a cleared rerun) of a task instance must not pay for the same document twice, and
must never land another document's words. The ledger remembers, per task instance and per *what
was asked* (the document's SHA-256 and the model), the request an earlier try submitted. It is
written ahead: a pending mark before the upload, the request id right after it.

Where it lives: Airflow 3.3's task state store (``context["task_state_store"]``, scoped to the
task instance, shared by its tries, with a retention), or on Airflow 3.1/3.2 Airflow Variables,
deleted once the document has landed or failed for good.

What a retry does with it (see docs/reliability.md):

- a recorded request that the API still knows and that did not fail: reattach, no new charge;
- a recorded request the API no longer knows (404 / expired): submit again;
- a recorded request the API cannot be asked about right now (5xx, 429, outage): fail this try
  as retryable, without submitting;
- only a pending mark (an earlier try died between upload and record): submit again, and warn
  that the earlier upload may have been billed. Reattaching by guess is an opt-in
  (``reattach_unrecorded=True``) that must match page count, every page's size and the time window.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

from upstage_provider.documents import Document
from upstage_provider.exceptions import (
    UpstageAPIError,
    UpstageAuthError,
    UpstageConnectionError,
    UpstageError,
)
from upstage_provider.hooks.upstage import UpstageOCRHook
from upstage_provider.status import RequestState

log = logging.getLogger(__name__)

#: Upstage keeps a request's results for 30 days: past that a recorded request cannot be
#: reattached to anyway, so the ledger keeps entries at least that long.
DEFAULT_RETENTION = timedelta(days=30)
STATE_KEY_PREFIX = "upstage_submission."
VARIABLE_PREFIX = "upstage_submission__"
#: XCom key under which the submit operator hands the document's identity to the sensor.
DOCUMENT_XCOM_KEY = "upstage_document"
#: How far a listed request's ``requested_at`` may lie from the pending mark and still be ours
#: (opt-in reattachment only): before it by clock skew, after it by one upload of up to 50 MB.
PENDING_BEFORE = 120.0
PENDING_AFTER = 900.0
#: Page sizes agree when each side is within this fraction (a PDF's rendering DPI is the API's).
SIZE_TOLERANCE = 0.01


@dataclass(frozen=True)
class Submission:
    """One ledger entry: what was asked and, once the API accepted it, the request id."""

    document_uri: str
    document_sha256: str
    model: str
    pages: int | None
    bytes: int
    pending_since: float
    request_id: str | None = None
    submitted_at: float | None = None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, value: Any) -> Submission | None:
        if not isinstance(value, Mapping):
            return None
        fields: dict[str, Any] = {k: value.get(k) for k in cls.__dataclass_fields__}
        if not isinstance(fields["document_sha256"], str) or not isinstance(
            fields["pending_since"], (int, float)
        ):
            return None
        return cls(**fields)


class _Store(Protocol):
    key: str

    def get(self) -> Any: ...
    def set(self, value: dict[str, Any]) -> None: ...
    def delete(self) -> None: ...


class _TaskStateStore:
    """Airflow 3.3+: the task instance's own state, shared by its tries, expiring on its own."""

    def __init__(self, store: Any, key: str, retention: timedelta) -> None:
        self._store = store
        self.key = key
        self._retention = retention

    def get(self) -> Any:
        return self._store.get(self.key)

    def set(self, value: dict[str, Any]) -> None:
        self._store.set(self.key, value, retention=self._retention)

    def delete(self) -> None:
        self._store.delete(self.key)


class _VariableStore:
    """Airflow 3.1/3.2: a Variable per task instance and ask, deleted once the document is done."""

    def __init__(self, key: str) -> None:
        self.key = key

    def get(self) -> Any:
        from airflow.sdk import Variable

        return Variable.get(self.key, default=None, deserialize_json=True)

    def set(self, value: dict[str, Any]) -> None:
        from airflow.sdk import Variable

        Variable.set(self.key, value, serialize_json=True)

    def delete(self) -> None:
        delete_variable(self.key)


def delete_variable(key: str) -> None:
    from airflow.sdk import Variable

    try:
        Variable.delete(key)
    except Exception as exc:  # cleanup must never fail a task that landed its document
        log.warning("Could not delete the ledger Variable %s (%s); it is safe to delete by hand", key, exc)


class Ledger:
    """The ledger entry of one task instance for one document (or one part of it) and model."""

    def __init__(
        self,
        context: Mapping[str, Any],
        document_sha256: str,
        model: str,
        retention: timedelta = DEFAULT_RETENTION,
        *,
        part: str = "",
    ) -> None:
        # ``part`` keys one part of a split document (its index and page range) under the whole
        # document's hash: a part's own bytes differ from one split to the next (a PDF's /ID).
        what = f"{document_sha256}|{model}" + (f"|{part}" if part else "")
        ask = hashlib.sha256(what.encode()).hexdigest()[:32]
        state = context.get("task_state_store")
        self._store: _Store
        if state is not None:
            self._store = _TaskStateStore(state, STATE_KEY_PREFIX + ask, retention)
        else:
            ti = context["ti"]
            identity = f"{ti.dag_id}|{ti.task_id}|{ti.run_id}|{getattr(ti, 'map_index', -1)}|{ask}"
            self._store = _VariableStore(VARIABLE_PREFIX + hashlib.sha256(identity.encode()).hexdigest()[:32])
        self.document_sha256 = document_sha256
        self.model = model

    @property
    def uses_variables(self) -> bool:
        return isinstance(self._store, _VariableStore)

    @property
    def key(self) -> str:
        return self._store.key

    @property
    def variable_key(self) -> str | None:
        """The Variable to delete once the document is done (fallback path only)."""
        return self._store.key if self.uses_variables else None

    def read(self) -> Submission | None:
        entry = Submission.from_json(self._store.get())
        if entry is None or entry.document_sha256 != self.document_sha256 or entry.model != self.model:
            return None
        return entry

    def mark_pending(self, doc: Document, uri: str) -> Submission:
        # The ledger's own hash: a split document's part is recorded under the whole document's.
        entry = Submission(uri, self.document_sha256, self.model, doc.page_count, doc.size, time.time())
        self._store.set(entry.to_json())
        return entry

    def record(self, pending: Submission, request_id: str) -> Submission:
        entry = Submission(**{**pending.to_json(), "request_id": request_id, "submitted_at": time.time()})
        self._store.set(entry.to_json())
        return entry

    def forget(self) -> None:
        self._store.delete()

    def forget_if_variable(self) -> None:
        """On the Variables fallback the entry goes once the document has landed or failed for good."""
        if self.uses_variables:
            self._store.delete()


def document_handoff(entry: Submission, variable_key: str | None) -> dict[str, Any]:
    """What the sensor needs to know of the document, pushed to XCom beside the request id."""
    return {
        "request_id": entry.request_id,
        "document_uri": entry.document_uri,
        "document_sha256": entry.document_sha256,
        "model": entry.model,
        "pages": entry.pages,
        "ledger_variable": variable_key,
    }


def find_handoff(
    context: Mapping[str, Any], task_ids: Iterable[str], request_id: str
) -> dict[str, Any] | None:
    """The submit task's word on the document behind ``request_id``, pulled from its XCom.

    The same map index first (a mapped task group, or two tasks expanded over the same list),
    then every map index of the upstream tasks.
    """
    ti = context.get("ti")
    task_ids = sorted(task_ids)
    if ti is None or not task_ids:
        return None
    map_index = getattr(ti, "map_index", -1)
    tries: list[dict[str, Any]] = []
    if map_index is not None and map_index >= 0:
        tries.append({"map_indexes": map_index})
    tries.append({})
    for kwargs in tries:
        for task_id in task_ids:
            try:
                found = ti.xcom_pull(task_ids=task_id, key=DOCUMENT_XCOM_KEY, **kwargs)
            except Exception as exc:  # an upstream that pushed nothing of ours
                log.debug("No %s XCom from %s (%s)", DOCUMENT_XCOM_KEY, task_id, exc)
                continue
            for value in found if isinstance(found, list) else [found]:
                if isinstance(value, Mapping) and value.get("request_id") == request_id:
                    return dict(value)
    return None


# --- a retry's decision ---------------------------------------------------------------------------


def is_gone(exc: UpstageError) -> bool:
    """The API says it does not know the request (any more): the only reason to submit anew."""
    if not isinstance(exc, UpstageAPIError) or exc.status_code is None:
        return False
    if exc.status_code in (404, 410):
        return True
    words = f"{exc.code or ''} {exc.message}".lower()
    return 400 <= exc.status_code < 500 and "expired" in words


def never_reached_api(exc: BaseException) -> bool:
    """True when a failed submit certainly created no request: its pending mark can go."""
    if isinstance(exc, UpstageConnectionError):
        return exc.never_sent
    if isinstance(exc, UpstageAPIError):
        if exc.status_code is None:  # refused locally (no key, ...) before anything was sent
            return isinstance(exc, UpstageAuthError)
        return 400 <= exc.status_code < 500
    return not isinstance(exc, UpstageError)  # a local error before the upload started


def submit_once(
    hook: UpstageOCRHook,
    ledger: Ledger,
    doc: Document,
    uri: str,
    *,
    reattach_unrecorded: bool = False,
) -> tuple[Submission, bool]:
    """Submit ``doc`` unless this task instance already did; returns (ledger entry, reattached)."""
    model = ledger.model
    entry = ledger.read()
    if entry is not None and entry.request_id is not None:
        if _still_usable(hook, entry, uri):
            return entry, True
    elif entry is not None:
        found = find_unrecorded_submission(hook, doc, entry.pending_since) if reattach_unrecorded else None
        if found is not None:
            log.warning(
                "Reattaching %s to unrecorded Upstage request %s: page count, page sizes and time match "
                "the upload an earlier try started at %s (reattach_unrecorded=True)",
                uri,
                found,
                _when(entry.pending_since),
            )
            return ledger.record(entry, found), True
        log.warning(
            "Possible duplicate charge: an earlier try started uploading %s at %s (pending mark in %s) and "
            "stopped before recording a request id. If that upload reached Upstage it is billed; submitting "
            "again, because reattaching by guess could land another document's words",
            uri,
            _when(entry.pending_since),
            ledger.key,
        )
    pending = ledger.mark_pending(doc, uri)
    try:
        request_id = hook.submit(doc, model=model)
    except BaseException as exc:
        if never_reached_api(exc):
            ledger.forget()
        raise
    return ledger.record(pending, request_id), False


def _still_usable(hook: UpstageOCRHook, entry: Submission, uri: str) -> bool:
    """Reattach to a recorded request unless the API says it is gone or failed."""
    request_id = entry.request_id
    try:
        info = hook.get_request(str(request_id))
    except UpstageError as exc:
        if not is_gone(exc):
            # A busy or unreachable API is not a gone request: this try fails as it would on any
            # transient error, and the next one asks again, without paying for the document.
            raise
        log.warning("Upstage no longer knows request %s for %s (%s); submitting again", request_id, uri, exc)
        return False
    if info.status is RequestState.FAILED:
        log.warning(
            "Earlier Upstage request %s for %s failed (%s); submitting again",
            request_id,
            uri,
            info.failure_message or "no reason given",
        )
        return False
    log.info(
        "Reattaching to Upstage request %s for %s (%s); not submitting again",
        request_id,
        uri,
        info.progress(),
    )
    return True


def find_unrecorded_submission(hook: UpstageOCRHook, doc: Document, since: float) -> str | None:
    """The opt-in guess: the one completed request in the window whose every page has ``doc``'s size.

    The API's status and list carry neither a file name nor a hash, so this can never prove a
    request is ``doc``'s: two scans of the same paper size and page count look the same to it.
    Anything short of exactly one match (or an API that cannot be read) means submitting anew.
    """
    if not doc.pages:
        return None
    try:
        listed = hook.list_requests()
    except UpstageError as exc:
        log.warning("Could not list Upstage requests to find an unrecorded submission (%s)", exc)
        return None
    matches = [request_id for request_id in _in_window(listed, since) if _pages_match(hook, request_id, doc)]
    if len(matches) > 1:
        log.warning(
            "%d unrecorded Upstage requests could be the one a killed try submitted (%s); not guessing",
            len(matches),
            ", ".join(matches),
        )
    return matches[0] if len(matches) == 1 else None


def _in_window(listed: list[dict[str, Any]], since: float) -> list[str]:
    out = []
    for entry in listed:
        request_id, requested = entry.get("id"), _api_time(entry.get("requested_at"))
        if not isinstance(request_id, str) or requested is None:
            continue
        if since - PENDING_BEFORE <= requested <= since + PENDING_AFTER:
            out.append(request_id)
    return out


def _pages_match(hook: UpstageOCRHook, request_id: str, doc: Document) -> bool:
    try:
        info = hook.get_request(request_id)
        if info.status is not RequestState.COMPLETED or info.total_pages != doc.page_count:
            return False
        sizes = [
            (p.width, p.height) for batch in hook.iter_batches(request_id, info=info) for p in batch.pages
        ]
    except UpstageError as exc:
        log.info("Upstage request %s cannot be checked (%s); not a candidate", request_id, exc)
        return False
    expected = [(p.width, p.height) for p in doc.pages or ()]
    return len(sizes) == len(expected) and all(
        _close(w, ew) and _close(h, eh) for (w, h), (ew, eh) in zip(sizes, expected, strict=True)
    )


def _close(value: Any, expected: int) -> bool:
    return isinstance(value, (int, float)) and abs(value - expected) <= SIZE_TOLERANCE * max(expected, 1)


def _api_time(value: Any) -> float | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def _when(epoch: float) -> str:
    return datetime.fromtimestamp(epoch).astimezone().isoformat(timespec="seconds")

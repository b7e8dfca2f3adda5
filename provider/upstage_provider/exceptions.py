"""Errors the provider raises, importable without Airflow.

Three families: ``DocumentError`` (bad input, found before any upload), ``NotAskedError`` (a call
refused before the API was asked) and ``UpstageAPIError`` (what the API answered, or that it did
not). ``permanent`` tells operators whether a retry could ever help.
"""

from __future__ import annotations

import errno


class UpstageError(Exception):
    """Base of every error this provider raises on purpose."""

    permanent: bool = True


# --- documents: raised before any upload ------------------------------------------------------


class DocumentError(UpstageError, ValueError):
    """The document cannot be sent as it is; the message says which file, which limit, what to do."""


class DocumentSourceError(DocumentError):
    """The source cannot be read as given: a missing file, an unusable URI, bytes without a name."""


class UnsupportedDocumentError(DocumentError):
    """The content is not one of the formats the API reads."""


class EmptyDocumentError(DocumentError):
    """The file has no bytes."""


class DocumentTooLargeError(DocumentError):
    """The file is over the API's size limit."""


class TooManyPagesError(DocumentError):
    """The document has more pages than the chosen endpoint accepts."""


class PageTooLargeError(DocumentError):
    """A page is over the API's pixel limit."""


class CorruptDocumentError(DocumentError):
    """The file claims a format but cannot be read as it."""


class EncryptedDocumentError(CorruptDocumentError):
    """The PDF is password-protected; the API cannot open it either."""


# --- responses ----------------------------------------------------------------------------------


class MalformedResponseError(UpstageError, ValueError):
    """A response does not have the shape of an Upstage OCR result."""


class BatchPagesMismatchError(MalformedResponseError):
    """A response holds other pages than the ones announced: too many or too few, or page ids that
    fit neither the batch-relative nor the absolute numbering of its pages.

    The usual cause is a download URL that led to another batch's result; the hook fetches the
    batch once more through fresh URLs before it raises this.
    """


# --- calls refused before the API was asked -----------------------------------------------------


class NotAskedError(UpstageError):
    """The hook refused a call before sending anything: the API was never asked, so there is no
    status code, and repeating the same call cannot help."""


class InvalidRequestIdError(NotAskedError, ValueError):
    """A request id that could change the URL path it goes into (empty, ``/``, ``?``, ...)."""


class RequestNotCompletedError(NotAskedError):
    """Results asked for before the request completed; wait for it (a sensor) first."""


class InvalidConnectionURLError(NotAskedError, ValueError):
    """The connection's host is not a usable base URL (another scheme, no host name, a query);
    found when the hook first reads the connection, before any call."""


class InvalidConnectionExtraError(NotAskedError, ValueError):
    """A connection extra the provider cannot use (a ``price_per_page`` that is not a price);
    found before any OCR call, fixed in the connection."""


# --- the API's answers --------------------------------------------------------------------------


class UpstageAPIError(UpstageError):
    """The API answered with an error status; ``message`` is the API's own text."""

    def __init__(
        self,
        message: str,
        *,
        status_code: int | None = None,
        error_type: str | None = None,
        code: str | None = None,
        endpoint: str | None = None,
    ) -> None:
        self.message = message
        self.status_code = status_code
        self.error_type = error_type
        self.code = code
        self.endpoint = endpoint
        where = f" from {endpoint}" if endpoint else ""
        status = f"HTTP {status_code}" if status_code is not None else "error"
        super().__init__(f"Upstage API {status}{where}: {message}")


class UpstageAuthError(UpstageAPIError):
    """401/403 on an authenticated call: the key is wrong, revoked or missing."""


class UpstageRequestError(UpstageAPIError):
    """A 4xx other than 401 and 429: the request itself is wrong and a retry will not help."""


class UpstageRateLimitError(UpstageAPIError):
    """429 after every retry was spent."""

    permanent = False


class UpstageServerError(UpstageAPIError):
    """5xx after every retry was spent."""

    permanent = False


class UpstageConnectionError(UpstageAPIError):
    """
    No HTTP answer after every retry: could not connect (never sent), no answer in time, or the
    connection was lost after the request was sent (the API may have done the work).
    """

    permanent = False
    #: How the message words the first case, the only one that proves the API never saw the call.
    NEVER_SENT = "could not connect to"

    def __init__(
        self,
        message: str,
        *,
        never_sent: bool = False,
        status_code: int | None = None,
        error_type: str | None = None,
        code: str | None = None,
        endpoint: str | None = None,
    ) -> None:
        super().__init__(
            message, status_code=status_code, error_type=error_type, code=code, endpoint=endpoint
        )
        #: True only when no connection was made: the call certainly never reached the API.
        self.never_sent = never_sent


class UpstageTLSError(UpstageConnectionError):
    """The TLS handshake failed: no request was sent, and a retry meets the same server. Usually
    an ``https://`` base URL for a server that speaks plain HTTP, or an untrusted certificate."""

    permanent = True


class DownloadURLExpiredError(UpstageAPIError):
    """A batch's pre-signed download URL answered 403: fetch the request again for fresh URLs."""

    permanent = False


class RequestFailedError(UpstageAPIError):
    """An async request, or one of its batches, ended ``failed``; ``pages`` names the range."""

    def __init__(self, message: str, *, request_id: str, pages: tuple[int, int] | None = None) -> None:
        self.request_id = request_id
        self.pages = pages
        span = f" (pages {pages[0]}-{pages[1]})" if pages else ""
        super().__init__(f"request {request_id}{span} failed: {message}")
        # Keep the API's message as given, not the composed text.
        self.message = message


class DocumentPartError(UpstageError):
    """One part of a split document failed (its submission, its request or its results).

    The message names the part and its document page range; ``cause`` is the part's own error,
    whose ``permanent`` this error takes over.
    """

    def __init__(self, message: str, *, cause: UpstageError | None = None, permanent: bool = True) -> None:
        super().__init__(message)
        self.cause = cause
        self.permanent = cause.permanent if cause is not None else permanent


# --- writing results -------------------------------------------------------------------------


class ParquetWriteError(UpstageError):
    """A Parquet file could not be written; nothing was left behind and any earlier file is intact.

    ``permanent`` is True only when a retry cannot help: no permission, a read-only file system, a
    file where a folder should be, or data that does not fit the schema. Anything else (network,
    full disk, a flaky object store) is worth a retry.
    """

    permanent = False

    def __init__(self, target: str, cause: BaseException) -> None:
        self.target = target
        self.cause = cause
        self.permanent = _is_permanent(cause)
        reason = str(cause) or type(cause).__name__
        super().__init__(f"could not write {target}: {reason}")


_PERMANENT_ERRNOS = frozenset({errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOTDIR, errno.EEXIST})


def _is_permanent(cause: BaseException) -> bool:
    """Follow explicit causes only (``raise ... from``): fsspec and s3fs keep the OS error there."""
    if isinstance(cause, (TypeError, ValueError)) and not isinstance(cause, OSError):
        return True  # includes ArrowInvalid and ArrowTypeError: the data, not the storage
    seen: set[int] = set()
    exc: BaseException | None = cause
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, (PermissionError, NotADirectoryError, FileExistsError)):
            return True
        if isinstance(exc, OSError) and exc.errno in _PERMANENT_ERRNOS:
            return True
        exc = exc.__cause__
    return False


class ParquetPairMismatchError(UpstageError):
    """The words and pages files of a document may not come from the same write.

    Another run wrote the same document to the same location at the same moment, on storage where
    writers cannot lock each other out (object stores): both files were published, each complete,
    but the one read back is not this run's. Never permanent: a rerun writes the pair again.
    """

    permanent = False

    def __init__(
        self, words_target: str, pages_target: str, write_id: str, reason: str, *, footer_key: str
    ) -> None:
        self.words_target = words_target
        self.pages_target = pages_target
        self.write_id = write_id
        super().__init__(
            f"{words_target} and {pages_target} may come from different writes: {reason}; another run "
            f"is writing the same document to the same location at the same time. Each file is "
            f"complete, but join them only after one of the runs has written again (compare "
            f"{footer_key} in their footers); do not share an output location between concurrent runs"
        )

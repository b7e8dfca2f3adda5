"""A test-only Iceberg REST catalog server: the REST spec's endpoints over pyiceberg's SqlCatalog on SQLite.

No REST catalog server installs from PyPI and runs here (Lakekeeper, Polaris, Gravitino and the
reference server are a Rust binary or JVM jars; PyPI's ``apache-polaris`` is only a client), so
the REST tests talk to this one over real HTTP on 127.0.0.1. It implements what pyiceberg's
``RestCatalog`` calls when the table operator runs, the way the spec's servers do:

- ``GET /v1/config?warehouse=...``: the warehouse must be the server's (as Lakekeeper and Polaris
  require); the answer sets the ``prefix`` every other route carries, and lists the endpoints;
- ``POST /v1/oauth/tokens``: OAuth2 client credentials (``credential = "id:secret"``) for a token;
- namespaces: list, create, load, ``HEAD`` exists; tables: list, create (also staged, for
  ``create_table_transaction``), load, ``HEAD`` exists, and ``POST`` commit, which validates the
  client's requirements against the current metadata and swaps it (``SqlCatalog.commit_table``).

Every route but the token one wants ``Authorization: Bearer <token>``, else 401 (whose message
echoes the secret given, so a test sees whether the client leaks it further). Errors are the
spec's ``{"error": {"message", "type", "code"}}``, so pyiceberg raises its own exceptions: a stale
commit is 409 (``CommitFailedException``), a missing table or namespace 404, a duplicate 409.
``stale_commits_win`` turns the commit's requirement check off, to show a test fails without it.
"""

from __future__ import annotations

import collections
import threading
import time
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote

from fastapi import Depends, FastAPI, Header, Request, Response
from fastapi.responses import JSONResponse
from pydantic import ValidationError
from pyiceberg.catalog import Catalog
from pyiceberg.catalog.rest import (
    Capability,
    CreateTableRequest,
    ListNamespaceResponse,
    ListTableResponseEntry,
    ListTablesResponse,
    NamespaceResponse,
    TableResponse,
)
from pyiceberg.catalog.sql import SqlCatalog
from pyiceberg.exceptions import (
    CommitFailedException,
    NamespaceAlreadyExistsError,
    NoSuchNamespaceError,
    NoSuchTableError,
    TableAlreadyExistsError,
)
from pyiceberg.table import CommitTableRequest, CommitTableResponse

from upstage_provider.emulator.server import bind_socket, url_for

#: What the server tells clients it serves (pyiceberg then uses HEAD for the exists checks).
ENDPOINTS = [
    str(c)
    for c in (
        Capability.V1_LIST_NAMESPACES,
        Capability.V1_LOAD_NAMESPACE,
        Capability.V1_NAMESPACE_EXISTS,
        Capability.V1_CREATE_NAMESPACE,
        Capability.V1_LIST_TABLES,
        Capability.V1_LOAD_TABLE,
        Capability.V1_TABLE_EXISTS,
        Capability.V1_CREATE_TABLE,
        Capability.V1_UPDATE_TABLE,
    )
]
#: pyiceberg's default namespace separator in paths (the unit separator, %1F).
SEPARATOR = "\x1f"

# pyiceberg's exceptions as the spec's error types and status codes.
ERRORS: dict[type[Exception], tuple[int, str]] = {
    CommitFailedException: (409, "CommitFailedException"),
    NoSuchTableError: (404, "NoSuchTableException"),
    NoSuchNamespaceError: (404, "NoSuchNamespaceException"),
    TableAlreadyExistsError: (409, "AlreadyExistsException"),
    NamespaceAlreadyExistsError: (409, "AlreadyExistsException"),
    ValidationError: (400, "BadRequestException"),
    ValueError: (400, "BadRequestException"),
}


class RestError(Exception):
    """An error the server answers with directly (auth, unknown warehouse or prefix)."""

    def __init__(self, code: int, kind: str, message: str) -> None:
        super().__init__(message)
        self.code, self.kind, self.message = code, kind, message


def error_response(code: int, kind: str, message: str) -> JSONResponse:
    return JSONResponse({"error": {"message": message, "type": kind, "code": code}}, status_code=code)


def as_json(model: Any) -> Response:
    """pyiceberg's models serialize by alias (``metadata-location``), as the spec spells it."""
    return Response(model.model_dump_json(), media_type="application/json")


def table_response(metadata: Any, location: str | None) -> Response:
    """A LoadTableResult; ``location`` is None for a staged create (nothing written yet)."""
    return as_json(TableResponse.model_validate({"metadata": metadata, "metadata-location": location}))


class _Named:
    """What ``SqlCatalog.commit_table`` reads of the client's table: its identifier only."""

    def __init__(self, identifier: tuple[str, ...]) -> None:
        self._identifier = identifier

    def name(self) -> tuple[str, ...]:
        return self._identifier


class RestCatalogServer:
    """The REST catalog on a free port of 127.0.0.1, in a background thread; ``uri`` is its base URL.

    ``statuses`` counts the answers by (method, route, status), e.g. the 409s of lost commits.
    """

    def __init__(
        self, root: Path, *, token: str, warehouse: str = "lake", client: tuple[str, str] | None = None
    ) -> None:
        self.token = token
        self.warehouse = warehouse
        self.client = client  # (client id, secret) accepted by /v1/oauth/tokens
        self.stale_commits_win = False
        self.statuses: collections.Counter[tuple[str, str, int]] = collections.Counter()
        self.catalog = SqlCatalog(
            "rest-backend", uri=f"sqlite:///{root}/rest-catalog.db", warehouse=(root / "warehouse").as_uri()
        )
        self.port = 0
        self._server: Any = None
        self._thread: threading.Thread | None = None

    @property
    def uri(self) -> str:
        return url_for("127.0.0.1", self.port)

    def conflicts(self) -> int:
        """Commits answered 409: a client's requirements no longer held (it lost a race)."""
        return sum(n for (m, route, code), n in self.statuses.items() if route == "commit" and code == 409)

    # -- the app ---------------------------------------------------------------------------------

    def app(self) -> FastAPI:
        app = FastAPI()
        catalog = self.catalog

        @app.middleware("http")
        async def count(request: Request, call_next: Any) -> Response:
            response: Response = await call_next(request)
            route = request.scope.get("route")
            name = getattr(route, "name", "unknown")
            self.statuses[(request.method, name, response.status_code)] += 1
            return response

        @app.exception_handler(RestError)
        def rest_error(request: Request, exc: RestError) -> JSONResponse:
            return error_response(exc.code, exc.kind, exc.message)

        for kind, (code, name) in ERRORS.items():

            def handler(request: Request, exc: Exception, code: int = code, name: str = name) -> JSONResponse:
                return error_response(code, name, str(exc).splitlines()[0])

            app.add_exception_handler(kind, handler)

        def authorized(authorization: str | None = Header(default=None)) -> None:
            if authorization is None:
                raise RestError(401, "NotAuthorizedException", "missing bearer token")
            scheme, _, value = authorization.partition(" ")
            if scheme.lower() != "bearer" or value != self.token:
                # Echoed like a careless server would: the client must keep it out of its errors.
                raise RestError(401, "NotAuthorizedException", f"invalid bearer token {value!r}")

        def in_warehouse(prefix: str) -> None:
            if prefix != self.warehouse:
                raise RestError(404, "NoSuchWarehouseException", f"no warehouse {prefix!r}")

        guarded = [Depends(authorized), Depends(in_warehouse)]

        @app.post("/v1/oauth/tokens", name="token")
        async def token(request: Request) -> Response:
            form = {k: v[0] for k, v in parse_qs((await request.body()).decode()).items()}
            given = (form.get("client_id", ""), form.get("client_secret", ""))
            if form.get("grant_type") != "client_credentials" or self.client is None or given != self.client:
                description = f"unknown client credentials {given[0]}:{given[1]}"  # echoed, as above
                body = {"error": "invalid_client", "error_description": description}
                return JSONResponse(body, status_code=401)
            return JSONResponse(
                {
                    "access_token": self.token,
                    "token_type": "bearer",
                    "expires_in": 3600,
                    "issued_token_type": "urn:ietf:params:oauth:token-type:access_token",
                }
            )

        @app.get("/v1/config", name="config", dependencies=[Depends(authorized)])
        def config(warehouse: str | None = None) -> Response:
            if not warehouse:
                raise RestError(
                    400, "BadRequestException", "give the warehouse (catalog property 'warehouse')"
                )
            in_warehouse(warehouse)
            return JSONResponse({"defaults": {}, "overrides": {"prefix": warehouse}, "endpoints": ENDPOINTS})

        @app.get("/v1/{prefix}/namespaces", name="list_namespaces", dependencies=guarded)
        def list_namespaces(parent: str | None = None) -> Response:
            found = catalog.list_namespaces(namespace(parent) if parent else ())
            return as_json(ListNamespaceResponse(namespaces=found))

        @app.post("/v1/{prefix}/namespaces", name="create_namespace", dependencies=guarded)
        async def create_namespace(request: Request) -> Response:
            body = await request.json()
            name, properties = tuple(body["namespace"]), body.get("properties") or {}
            catalog.create_namespace(name, properties)
            return as_json(NamespaceResponse(namespace=name, properties=properties))

        @app.head("/v1/{prefix}/namespaces/{ns}", name="namespace_exists", dependencies=guarded)
        def namespace_exists(ns: str) -> Response:
            catalog.load_namespace_properties(namespace(ns))
            return Response(status_code=204)

        @app.get("/v1/{prefix}/namespaces/{ns}", name="load_namespace", dependencies=guarded)
        def load_namespace(ns: str) -> Response:
            name = namespace(ns)
            return as_json(
                NamespaceResponse(namespace=name, properties=catalog.load_namespace_properties(name))
            )

        @app.get("/v1/{prefix}/namespaces/{ns}/tables", name="list_tables", dependencies=guarded)
        def list_tables(ns: str) -> Response:
            found = [
                ListTableResponseEntry(namespace=t[:-1], name=t[-1])
                for t in catalog.list_tables(namespace(ns))
            ]
            return as_json(ListTablesResponse(identifiers=found))

        @app.post("/v1/{prefix}/namespaces/{ns}/tables", name="create_table", dependencies=guarded)
        async def create_table(ns: str, request: Request) -> Response:
            body = await request.json()
            body.setdefault("location", None)  # required by the model, but left out of the JSON when None
            create = CreateTableRequest.model_validate(body)
            identifier = (*namespace(ns), create.name)
            args: dict[str, Any] = {
                "schema": create.table_schema,
                "location": create.location,
                "properties": create.properties,
            }
            if create.partition_spec is not None:
                args["partition_spec"] = create.partition_spec
            if create.write_order is not None:
                args["sort_order"] = create.write_order
            if create.stage_create:
                # Nothing is created yet: the client's first commit (AssertCreate) creates it.
                if catalog.table_exists(identifier):
                    raise TableAlreadyExistsError(f"table {'.'.join(identifier)} already exists")
                catalog.load_namespace_properties(namespace(ns))
                staged = catalog._create_staged_table(identifier, **args)
                return table_response(staged.metadata, None)
            table = catalog.create_table(identifier, **args)
            return table_response(table.metadata, table.metadata_location)

        @app.head("/v1/{prefix}/namespaces/{ns}/tables/{table}", name="table_exists", dependencies=guarded)
        def table_exists(ns: str, table: str) -> Response:
            catalog.load_table((*namespace(ns), unquote(table)))
            return Response(status_code=204)

        @app.get("/v1/{prefix}/namespaces/{ns}/tables/{table}", name="load_table", dependencies=guarded)
        def load_table(ns: str, table: str) -> Response:
            loaded = catalog.load_table((*namespace(ns), unquote(table)))
            return table_response(loaded.metadata, loaded.metadata_location)

        @app.post("/v1/{prefix}/namespaces/{ns}/tables/{table}", name="commit", dependencies=guarded)
        async def commit(ns: str, table: str, request: Request) -> Response:
            change = CommitTableRequest.model_validate_json(await request.body())
            identifier = (*namespace(ns), unquote(table))
            requirements = change.requirements
            if self.stale_commits_win:  # the broken server: last writer wins, the other's rows are lost
                requirements = tuple(r for r in requirements if r.type == "assert-create")
            response: CommitTableResponse = catalog.commit_table(
                _Named(identifier),  # type: ignore[arg-type]
                requirements,
                change.updates,
            )
            return as_json(response)

        return app

    # -- running ---------------------------------------------------------------------------------

    def start(self) -> RestCatalogServer:
        import uvicorn

        sock = bind_socket("127.0.0.1", 0)
        self.port = sock.getsockname()[1]
        config = uvicorn.Config(self.app(), access_log=False, log_config=None, lifespan="off")
        self._server = server = uvicorn.Server(config)

        def serve() -> None:
            try:
                server.run(sockets=[sock])
            finally:
                sock.close()

        self._thread = threading.Thread(target=serve, name=f"rest-catalog-{self.port}", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 30
        while not server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"the REST catalog did not start on {self.uri}")
            time.sleep(0.005)
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(30)
        self._server = self._thread = None


def namespace(encoded: str) -> tuple[str, ...]:
    """A namespace from its path segment (levels joined by pyiceberg's separator)."""
    return Catalog.identifier_to_tuple(tuple(unquote(encoded).split(SEPARATOR)))

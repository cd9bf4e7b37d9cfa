"""The scoring service: a FastAPI app that hosts a v1 entry script's ``init()`` / ``run()`` (§9.5).

Routes:

- ``GET /``: liveness; ``200 Healthy`` once ``init()`` succeeded, ``503 Initializing`` while it runs.
  If importing the script or ``init()`` fails, the traceback goes to stderr and (by default) the
  process exits with :data:`~trainyard._serving.process.EXIT_INIT_FAILED`.
- ``GET /ready``: readiness; ``200 Ready`` after ``init()``, ``503`` before.
- ``POST /score``: the raw body (UTF-8 text) goes to ``run()`` in a worker thread; the response is
  ``json.dumps(result)`` in compact form. ``run()`` raising gives ``500 {"error": "<Type>: <message>"}``
  (traceback on stderr) and the service keeps serving; bodies over ``max_request_bytes`` get ``413``
  without being read into memory; ``503`` before ``init()`` has finished; ``400`` for non-UTF-8 bodies.
- ``GET /swagger.json``: the OpenAPI document; ``/docs`` only with ``enable_docs``.

With auth on, every route but ``GET /`` and ``GET /ready`` needs ``Authorization: Bearer <key>``, else
``401 {"error": "Unauthorized"}``. Before that, every request must name an accepted ``Host`` and, from a
browser, an accepted ``Origin`` (``403``; see :mod:`trainyard._serving.gate`). ``POST /score`` has a
body timeout (``408``) and a ``run()`` timeout (``504``; see :mod:`trainyard._serving.scoring`). One
access line per request goes to stdout, control characters escaped.

Example::

    from trainyard._serving.app import create_app
    from trainyard._serving.config import ServingConfig
    app = create_app(ServingConfig(entry_script="score.py", source_directory="app"))
    # uvicorn.run(app, host="127.0.0.1", port=5001)
"""

from __future__ import annotations

import os
import threading
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

from trainyard.exceptions import ConfigError, MissingExtraError

try:
    from fastapi import FastAPI, Request
    from fastapi.responses import PlainTextResponse, Response
except ImportError as _err:  # pragma: no cover - exercised only without the extra
    raise MissingExtraError.for_extra("serving", "The scoring server", _err.name) from None

from trainyard._serving import protocol
from trainyard._serving.auth import KeyStore
from trainyard._serving.config import CONFIG_ENV_VAR, ServingConfig
from trainyard._serving.gate import GateMiddleware
from trainyard._serving.hosts import HostPolicy
from trainyard._serving.lines import install_whole_lines
from trainyard._serving.process import prepare_process
from trainyard._serving.scoring import JSON_MEDIA_TYPE, Scorer
from trainyard._serving.state import READY, ServiceState, exit_on_init_failure, initialise
from trainyard._version import __version__

_SCORE_REQUEST_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "description": "The raw body, passed to the entry script's run(input_data) as a string; "
        'conventionally {"data": ...}.',
        "content": {JSON_MEDIA_TYPE: {"schema": {}}},
    }
}
_SCORE_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "json.dumps(run(input_data)), compact",
        "content": {JSON_MEDIA_TYPE: {"schema": {}}},
    },
    400: {"description": "The body is not valid UTF-8"},
    401: {"description": "Missing or wrong key (auth enabled)"},
    403: {"description": "Host or Origin not allowed (HOST_NOT_ALLOWED, ORIGIN_NOT_ALLOWED)"},
    408: {"description": "The body did not arrive within the body timeout (BODY_TIMEOUT)"},
    413: {"description": "Body larger than the service's limit"},
    500: {"description": 'run() raised; body {"error": "<Type>: <message>"}'},
    503: {
        "description": "init() has not finished yet, or every run() thread is held by a call "
        "that passed the run timeout (SCORING_OVERLOADED)"
    },
    504: {"description": "run() did not return within the run timeout (SCORING_TIMEOUT)"},
}


def _key_store(config: ServingConfig) -> KeyStore | None:
    if not config.auth_enabled:
        return None
    if config.keys_file is not None:
        return KeyStore.from_file(config.keys_file)
    return KeyStore(config.key_hashes)


def create_app(
    config: ServingConfig, *, on_init_failure: Callable[[str], None] | None = None
) -> FastAPI:
    """Build the scoring app for ``config``.

    ``init()`` runs once per worker, in a background thread started by the lifespan, so that liveness
    answers 503 meanwhile. ``on_init_failure`` receives the traceback text when import or ``init()``
    fails; the default (:func:`~trainyard._serving.state.exit_on_init_failure`) ends the process with
    ``EXIT_INIT_FAILED``. Raises :class:`~trainyard.exceptions.ConfigError` if the keys file cannot be
    read. The per-worker :class:`~trainyard._serving.state.ServiceState` is ``app.state.service``.

    Example::

        app = create_app(ServingConfig(entry_script="/srv/app/score.py"))
    """
    state = ServiceState()
    keys = _key_store(config)
    scorer = Scorer(
        state,
        max_request_bytes=config.max_request_bytes,
        run_concurrency=config.run_concurrency,
        body_timeout_s=config.body_timeout_s,
        run_timeout_s=config.run_timeout_s,
    )
    hosts = HostPolicy(config.host, config.allowed_hosts, config.allowed_origins)
    failure_hook = on_init_failure or exit_on_init_failure

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        threading.Thread(
            target=initialise,
            args=(config, state, failure_hook),
            name="trainyard-init",
            daemon=True,
        ).start()
        yield

    app = FastAPI(
        title=config.service_name,
        version=__version__,
        description=f"Scoring service for {config.entry_script.name} (trainyard).",
        openapi_url="/swagger.json",
        docs_url="/docs" if config.enable_docs else None,
        redoc_url=None,
        lifespan=lifespan,
    )
    app.state.service = state

    @app.get("/", response_class=PlainTextResponse, summary="Liveness")
    async def liveness() -> Response:
        if state.phase == READY:
            return PlainTextResponse("Healthy")
        return PlainTextResponse("Initializing", status_code=503, headers={"Retry-After": "1"})

    @app.get("/ready", response_class=PlainTextResponse, summary="Readiness")
    async def readiness() -> Response:
        if state.phase == READY:
            return PlainTextResponse("Ready")
        return PlainTextResponse("Initializing", status_code=503, headers={"Retry-After": "1"})

    for path, probe in (("/", liveness), ("/ready", readiness)):
        app.add_api_route(path, probe, methods=["HEAD"], include_in_schema=False)

    # GateMiddleware answers POST /score itself (fast path); this route documents it in the OpenAPI
    # document and serves it should the app ever be mounted without the gate.
    @app.post(
        "/score",
        summary="Score",
        response_class=Response,
        openapi_extra=_SCORE_REQUEST_BODY,
        responses=_SCORE_RESPONSES,
    )
    async def score(request: Request) -> Response:
        status, payload, extra = await scorer.respond(request.scope, request.receive)
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in extra}
        return Response(payload, status_code=status, media_type=JSON_MEDIA_TYPE, headers=headers)

    app.add_middleware(GateMiddleware, keys=keys, scorer=scorer, hosts=hosts)
    return app


def app_from_env() -> FastAPI:
    """Factory for uvicorn's multi-worker mode: the config comes from :data:`CONFIG_ENV_VAR` (JSON).

    Example::

        uvicorn.run("trainyard._serving.app:app_from_env", factory=True, workers=2)
    """
    raw = os.environ.get(CONFIG_ENV_VAR)
    if not raw:
        raise ConfigError(
            f"{CONFIG_ENV_VAR} is not set; start the server with python -m trainyard._serving."
        )
    config = ServingConfig.from_json(raw)
    prepare_process(config)
    install_whole_lines()
    protocol.configure(config.header_timeout_s)
    return create_app(config)

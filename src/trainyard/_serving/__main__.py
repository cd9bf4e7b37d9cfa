"""``python -m trainyard._serving``: start a scoring service for one v1 entry script.

Example::

    python -m trainyard._serving --entry-script score.py --source-directory app \\
        --model-dir trainyard-models/mnist/1 --port 0 --workers 2 --keys-file keys.json \\
        --log-file service.log --run-timeout 60 --allowed-host scoring.internal

Refusals (exit code 2, a ``trainyard-serving:`` line on stderr): a non-loopback ``--host`` with auth off
(unless ``--allow-remote-without-auth``), an unwritable ``--log-file``, malformed values.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from trainyard._serving.config import (
    DEFAULT_BODY_TIMEOUT_S,
    DEFAULT_HEADER_TIMEOUT_S,
    DEFAULT_LOG_BACKUPS,
    DEFAULT_LOG_MAX_BYTES,
    DEFAULT_MAX_REQUEST_BYTES,
    DEFAULT_RUN_TIMEOUT_S,
    DEFAULT_SERVICE_NAME,
    ServingConfig,
)
from trainyard._serving.process import EXIT_USAGE
from trainyard.exceptions import ConfigError


def build_parser() -> argparse.ArgumentParser:
    """The command-line interface (all flags optional except ``--entry-script``)."""
    parser = argparse.ArgumentParser(
        prog="python -m trainyard._serving",
        description="Serve a v1 scoring script's init()/run() over HTTP (GET /, GET /ready, POST /score).",
    )
    parser.add_argument(
        "--entry-script", required=True, help="scoring script; relative to --source-directory"
    )
    parser.add_argument(
        "--source-directory", default=None, help="app folder: put first on sys.path, becomes cwd"
    )
    parser.add_argument(
        "--model-dir", default=None, help="sets TRAINYARD_MODEL_DIR and AZUREML_MODEL_DIR"
    )
    parser.add_argument("--host", default="127.0.0.1", help="bind address (default 127.0.0.1)")
    parser.add_argument(
        "--port", type=int, default=5001, help="port, 0 for any free one (default 5001)"
    )
    parser.add_argument(
        "--workers", type=int, default=1, help="worker processes, each runs init() (default 1)"
    )
    parser.add_argument(
        "--keys-file",
        default=None,
        help='JSON {"key_hashes": [sha256 hex, ...]}; turns auth on; re-read when it changes',
    )
    parser.add_argument(
        "--max-request-bytes",
        type=int,
        default=DEFAULT_MAX_REQUEST_BYTES,
        help=f"largest accepted POST /score body (default {DEFAULT_MAX_REQUEST_BYTES})",
    )
    parser.add_argument(
        "--service-name", default=DEFAULT_SERVICE_NAME, help="shown in the OpenAPI document"
    )
    parser.add_argument(
        "--run-concurrency",
        type=int,
        default=1,
        help="run() calls in flight per worker (default 1)",
    )
    parser.add_argument(
        "--enable-docs", action="store_true", help="serve the interactive docs at /docs"
    )
    exposure = parser.add_argument_group("exposure (DNS rebinding, cross-site calls)")
    exposure.add_argument(
        "--allowed-host",
        action="append",
        default=[],
        metavar="NAME",
        help="also accept this Host name or address (repeatable; .example.com: every subdomain; "
        "*: any). Loopback names and the bind address are always accepted",
    )
    exposure.add_argument(
        "--allowed-origin",
        action="append",
        default=[],
        metavar="ORIGIN",
        help="let browser pages of this origin (scheme://host[:port]; *: any) call the service "
        "(repeatable); other cross-origin requests get 403",
    )
    exposure.add_argument(
        "--allow-remote-without-auth",
        action="store_true",
        help="serve on a non-loopback --host although auth is off (refused otherwise)",
    )
    limits = parser.add_argument_group("timeouts (seconds, 0 = no limit)")
    limits.add_argument(
        "--header-timeout",
        type=float,
        default=DEFAULT_HEADER_TIMEOUT_S,
        help=f"for a request's headers (default {DEFAULT_HEADER_TIMEOUT_S:g})",
    )
    limits.add_argument(
        "--body-timeout",
        type=float,
        default=DEFAULT_BODY_TIMEOUT_S,
        help=f"for a POST /score body; 408 after it (default {DEFAULT_BODY_TIMEOUT_S:g})",
    )
    limits.add_argument(
        "--run-timeout",
        type=float,
        default=DEFAULT_RUN_TIMEOUT_S,
        help=f"for run(); 504 after it (default {DEFAULT_RUN_TIMEOUT_S:g})",
    )
    logs = parser.add_argument_group("service log")
    logs.add_argument(
        "--log-file",
        default=None,
        help="write stdout and stderr (all workers) to this file, rotated by size",
    )
    logs.add_argument(
        "--log-max-bytes",
        type=int,
        default=DEFAULT_LOG_MAX_BYTES,
        help=f"rotate the log before it passes this size (default {DEFAULT_LOG_MAX_BYTES})",
    )
    logs.add_argument(
        "--log-backups",
        type=int,
        default=DEFAULT_LOG_BACKUPS,
        help=f"rotated logs to keep: FILE.1 .. FILE.N (default {DEFAULT_LOG_BACKUPS})",
    )
    return parser


def _seconds(value: float) -> float | None:
    return None if value == 0 else value


def main(argv: Sequence[str] | None = None) -> int:
    """Parse ``argv``, serve until stopped, return the exit code (see ``trainyard._serving.process``)."""
    args = build_parser().parse_args(argv)
    if args.workers < 1 or not 0 <= args.port <= 65535:
        print("trainyard-serving: --workers must be >= 1 and --port in [0, 65535]", file=sys.stderr)
        return EXIT_USAGE
    try:
        config = ServingConfig(
            entry_script=args.entry_script,
            source_directory=args.source_directory,
            model_dir=args.model_dir,
            keys_file=args.keys_file,
            auth_enabled=args.keys_file is not None,
            max_request_bytes=args.max_request_bytes,
            service_name=args.service_name,
            run_concurrency=args.run_concurrency,
            enable_docs=args.enable_docs,
            host=args.host,
            allowed_hosts=tuple(args.allowed_host),
            allowed_origins=tuple(args.allowed_origin),
            allow_remote_without_auth=args.allow_remote_without_auth,
            header_timeout_s=_seconds(args.header_timeout),
            body_timeout_s=_seconds(args.body_timeout),
            run_timeout_s=_seconds(args.run_timeout),
            log_file=args.log_file,
            log_max_bytes=args.log_max_bytes,
            log_backups=args.log_backups,
        )
        if config.keys_file is not None:
            from trainyard._serving.auth import read_keys_file

            read_keys_file(config.keys_file)  # fail fast, before any worker starts
    except ConfigError as err:
        print(f"trainyard-serving: {err}", file=sys.stderr)
        return EXIT_USAGE

    from trainyard._serving.launcher import serve

    return serve(config, port=args.port, workers=args.workers)


if __name__ == "__main__":
    sys.exit(main())

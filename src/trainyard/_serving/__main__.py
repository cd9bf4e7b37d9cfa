"""``python -m trainyard._serving``: start a scoring service for one v1 entry script.

Example::

    python -m trainyard._serving --entry-script score.py --source-directory app \\
        --model-dir trainyard-models/mnist/1 --port 0 --workers 2 --keys-file keys.json
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from trainyard._serving.config import DEFAULT_MAX_REQUEST_BYTES, DEFAULT_SERVICE_NAME, ServingConfig
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
    return parser


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
        )
        if config.keys_file is not None:
            from trainyard._serving.auth import read_keys_file

            read_keys_file(config.keys_file)  # fail fast, before any worker starts
    except ConfigError as err:
        print(f"trainyard-serving: {err}", file=sys.stderr)
        return EXIT_USAGE

    from trainyard._serving.launcher import serve

    return serve(config, host=args.host, port=args.port, workers=args.workers)


if __name__ == "__main__":
    sys.exit(main())

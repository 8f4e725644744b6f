"""The ``serve`` command: the real-time detection service over HTTP (see :mod:`lossless_triplet.service`)."""

from __future__ import annotations

import argparse
import ipaddress
import logging
import sys
from pathlib import Path

from ..defaults import DEFAULT_MAX_BODY_BYTES, TOKEN_ENV

DEFAULT_HOST, DEFAULT_PORT = "127.0.0.1", 8080


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _configure_event_log(path: Path | None) -> None:
    """Events go to stderr (and ``path``) as bare JSON lines, whatever the -v level."""
    from ..service import event_logger

    event_logger.setLevel(logging.INFO)
    event_logger.propagate = False
    handlers = [logging.StreamHandler(sys.stderr)]
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        handlers.append(logging.FileHandler(path, encoding="utf-8"))
    for handler in handlers:
        handler.setFormatter(logging.Formatter("%(message)s"))
        event_logger.addHandler(handler)


def _cmd_serve(args: argparse.Namespace) -> int:
    if not 0 <= args.port <= 65535:
        raise ValueError(f"--port {args.port} must be a TCP port, 0 to 65535 (0: any free port)")
    try:
        import uvicorn

        from ..service import create_app, lock_bundle, read_token
        from ..service.server import server_config
    except ImportError as error:
        raise ImportError(f"serve needs the service packages ({error.name} is missing): "
                          "pip install 'lossless-triplet[serve]'") from None
    token = read_token(args.token_file)
    if not _is_loopback(args.host):
        print(f"lossless-triplet serve: warning: listening on {args.host}, beyond this machine; the service speaks "
              "plain HTTP: put a TLS proxy in front of it", file=sys.stderr)
    if token is None:
        print(f"lossless-triplet serve: fault changes are disabled (no --token-file, no ${TOKEN_ENV}); "
              "identify works", file=sys.stderr)
    _configure_event_log(args.event_log)
    # the bundle lock is taken here, not in the app's start-up, so a second server on one bundle gets one
    # error line (exit 2) instead of uvicorn's start-up traceback
    app = create_app(args.model, token=token, webhook=args.webhook, max_body_bytes=args.max_body_bytes,
                     normal_status=args.normal_status, lock=False)
    try:
        held = lock_bundle(Path(args.model))
    except ValueError:
        app.state.service.close()
        raise
    try:
        print(f"lossless-triplet serve: {args.model} on http://{args.host}:{args.port} (API docs at /docs)",
              file=sys.stderr, flush=True)
        uvicorn.Server(server_config(app, host=args.host, port=args.port,
                                     log_level="info" if args.verbose else "warning", access_log=args.access_log,
                                     timeout_graceful_shutdown=10)).run()
    finally:
        if held is not None:
            held.close()
    return 0


def register(sub) -> None:
    """Add the ``serve`` sub-command (imports nothing from the serve extra)."""
    serve = sub.add_parser(
        "serve", help="serve identify and fault changes over HTTP (needs the serve extra)",
        description="Run the real-time detection service: POST /v1/identify, GET/POST/DELETE /v1/faults, "
        "/healthz, /metrics; OpenAPI docs at /docs. Fault changes need a bearer token, read from --token-file "
        f"or ${TOKEN_ENV} (never from the command line); without one they are disabled.")
    serve.add_argument("--model", type=Path, required=True, help="model directory (fault changes rewrite it)")
    serve.add_argument("--host", default=DEFAULT_HOST, help=f"address to listen on (default {DEFAULT_HOST}: "
                       "this machine only)")
    serve.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"port (default {DEFAULT_PORT})")
    serve.add_argument("--token-file", type=Path, help=f"file holding the bearer token (else ${TOKEN_ENV})")
    serve.add_argument("--webhook", metavar="URL", help="POST status-change events (JSON) to this URL")
    serve.add_argument("--event-log", type=Path, help="also append events as JSON lines to this file")
    serve.add_argument("--normal-status", default="normal", help="the status meaning no fault (default normal)")
    serve.add_argument("--max-body-bytes", type=int, default=DEFAULT_MAX_BODY_BYTES,
                       help=f"larger request bodies get 413 (default {DEFAULT_MAX_BODY_BYTES})")
    serve.add_argument("--access-log", action="store_true", help="log every request (uvicorn access log)")
    serve.set_defaults(handler=_cmd_serve)

"""The ``serve`` subcommand: the local web page where a student checks a hand calculation
(:mod:`grukit.codegen.web`).

Flask is an extra (``pip install 'grukit[web]'``); without it ``grukit serve`` says so in one line.
The page listens on 127.0.0.1 unless ``--host`` says otherwise, and then answers only requests that
name this machine (``localhost``, ``127.0.0.1``: a web page elsewhere cannot reach it through a name
of its own, "DNS rebinding"); it runs Werkzeug's threaded server, without debugger or reloader.
"""
from __future__ import annotations

import socket

from grukit.derive.errors import GrukitError

try:
    from werkzeug.serving import make_server

    from grukit.codegen.web.app import create_app
except ModuleNotFoundError as exc:  # Flask (or its Werkzeug) is not installed
    if (exc.name or "").partition(".")[0] not in ("flask", "werkzeug"):
        raise
    create_app = make_server = None

NO_FLASK = "grukit serve needs Flask: pip install 'grukit[web]'"
LOCAL_NAMES = ("127.0.0.1", "localhost", "::1")


def cmd_serve(args) -> int:
    if create_app is None:
        raise GrukitError(NO_FLASK)
    app = create_app()
    if args.host in LOCAL_NAMES:
        app.config["TRUSTED_HOSTS"] = list(LOCAL_NAMES)
    _check_listen(args.host, args.port)
    server = make_server(args.host, args.port, app, threaded=True)
    shown = f"[{args.host}]" if ":" in args.host else args.host
    print(f"grukit serve: http://{shown}:{server.server_port}/ (Ctrl-C stops it)", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        print("grukit serve: stopped")
    finally:
        server.server_close()
    return 0


def _check_listen(host: str, port: int) -> None:
    """The one-line error when ``host:port`` cannot be listened on (Werkzeug's server would print its
    own lines and exit 1)."""
    try:
        family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the server will
            probe.bind((host, port))
    except (OSError, OverflowError) as exc:
        reason = getattr(exc, "strerror", None) or exc
        raise GrukitError(f"--host {host} --port {port}: cannot listen ({reason})") from None

"""The ``serve`` subcommand: the local web page where a student checks a hand calculation
(:mod:`grukit.codegen.web`).

Flask is an extra (``pip install 'grukit[web]'``); without it ``grukit serve`` says so in one line.
The page listens on 127.0.0.1 unless ``--host`` says otherwise; it has no debugger and no reloader.
"""
from __future__ import annotations

from grukit.derive.errors import GrukitError

try:
    from grukit.codegen.web.app import create_app
except ModuleNotFoundError as exc:  # Flask (or its Werkzeug) is not installed
    if (exc.name or "").partition(".")[0] not in ("flask", "werkzeug"):
        raise
    create_app = None

NO_FLASK = "grukit serve needs Flask: pip install 'grukit[web]'"


def cmd_serve(args) -> int:
    if create_app is None:
        raise GrukitError(NO_FLASK)
    app = create_app()
    local = {"127.0.0.1", "localhost", "::1"}
    if args.host in local:  # a page for this machine answers only to its own names (no DNS rebinding)
        app.config["TRUSTED_HOSTS"] = sorted(local | {"[::1]"})
    shown = f"[{args.host}]" if ":" in args.host else args.host
    print(f"grukit serve: http://{shown}:{args.port}/ (Ctrl-C stops it)", flush=True)
    try:
        app.run(host=args.host, port=args.port, debug=False, use_reloader=False, threaded=True)
    except OSError as exc:
        raise GrukitError(f"--host {args.host} --port {args.port}: cannot listen ({exc.strerror or exc})") from None
    return 0

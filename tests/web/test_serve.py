"""``grukit serve``: it starts in under 3 s and answers on 127.0.0.1; without Flask it says, in one line,
which extra to install."""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request

import pytest

pytest.importorskip("flask")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_serve_starts_in_under_three_seconds_on_this_machine_only():
    port = free_port()
    start = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "grukit", "serve", "--port", str(port)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5) as page:
                    body = page.read().decode()
                break
            except OSError:
                assert proc.poll() is None, proc.stdout.read()
                assert time.perf_counter() - start < 30
                time.sleep(0.05)
        seconds = time.perf_counter() - start
        assert "Check a GRU hand calculation" in body
        assert seconds < 3, seconds
        with urllib.request.urlopen(urllib.request.Request(f"http://127.0.0.1:{port}/",
                                                           headers={"Host": "attacker.example"})) as page:
            pytest.fail(f"a foreign Host was answered: {page.status}")
    except urllib.error.HTTPError as exc:  # the DNS-rebinding guard: only this machine's names
        assert exc.code == 400
    finally:
        proc.terminate()
        proc.wait(10)
    out = proc.stdout.read()
    assert f"http://127.0.0.1:{port}/" in out and "Traceback" not in out


def test_serve_without_flask_names_the_extra_in_one_line():
    code = ("import sys; sys.modules['flask'] = None; from grukit.codegen.cli.main import main; "
            "sys.exit(main(['serve']))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                          env=os.environ | {"PYTHONWARNINGS": "ignore"})
    assert proc.returncode == 2
    assert proc.stdout == "" and proc.stderr == "grukit: error: grukit serve needs Flask: pip install 'grukit[web]'\n"


def test_serve_refuses_a_port_it_cannot_listen_on_in_one_line():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        proc = subprocess.run([sys.executable, "-m", "grukit", "serve", "--port", str(port)], capture_output=True,
                              text=True, timeout=120)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.splitlines() == [f"grukit: error: --host 127.0.0.1 --port {port}: cannot listen (Address "
                                        f"already in use)"]

"""The app answers only its own host names and refuses cross-origin state changes (DNS
rebinding, CSRF); ``--port`` is checked before anything starts."""

from __future__ import annotations

import http.client
import json
import socket

import gradio as gr
import pytest

from apps import host_guard, web
from apps.host_guard import allowed_names, host_name, name_allowed, same_origin

REBIND = "rebind.attacker.example"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_host_names_and_origins():
    assert host_name("127.0.0.1:7860") == "127.0.0.1"
    assert host_name("[::1]:7860") == "::1"
    assert host_name("LocalHost.") == "localhost"
    assert host_name("::1") == "::1"
    allowed = allowed_names("0.0.0.0", ["Lab.example.org:7860", ".corp.example"])
    assert {"127.0.0.1", "localhost", "::1", "lab.example.org", ".corp.example"} == allowed
    assert name_allowed("gpu1.corp.example", allowed)
    assert not name_allowed(REBIND, allowed) and not name_allowed("", allowed)
    assert "lab" in allowed_names("lab")
    assert name_allowed("10.0.0.5", allowed) and name_allowed("::1", allowed)  # not rebindable
    assert not name_allowed("10.0.0.5.nip.io", allowed)
    assert name_allowed("abc.gradio.live", allowed_names("127.0.0.1", share=True))
    assert same_origin("http://127.0.0.1:7860", "127.0.0.1:7860")
    assert same_origin("http://[::1]:7860", "[::1]:7860")
    assert same_origin("https://lab.example.org", "lab.example.org:443")
    assert not same_origin("http://localhost:3000", "localhost:7860")
    assert not same_origin("null", "127.0.0.1:7860")
    assert not same_origin("http://evil.example", "127.0.0.1:7860")


def request(port: int, method: str, path: str, headers: dict, body: bytes | None = None):
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        connection.putrequest(method, path, skip_host=True)
        for name, value in headers.items():
            connection.putheader(name, value)
        if body is not None:
            connection.putheader("Content-Type", "application/json")
            connection.putheader("Content-Length", str(len(body)))
        connection.endheaders(body)
        response = connection.getresponse()
        return response.status, response.read().decode("utf-8", "replace")
    finally:
        connection.close()


@pytest.mark.slow
def test_the_served_app_refuses_foreign_hosts_and_cross_origin_calls(tmp_path):
    models = tmp_path / "runs"
    models.mkdir()
    demo = web.build_app(models)
    demo.queue(default_concurrency_limit=2)
    port = free_port()
    demo.launch(
        server_name="127.0.0.1",
        server_port=port,
        prevent_thread_lock=True,
        quiet=True,
        ssr_mode=False,
        app_kwargs=host_guard.app_kwargs("127.0.0.1", ["lab.example.org"]),
    )
    start = json.dumps({"data": ["quickstart", "stolen", 1, 1]}).encode()
    try:
        for host in (f"127.0.0.1:{port}", f"localhost:{port}", f"[::1]:{port}"):
            status, _ = request(port, "GET", "/config", {"Host": host})
            assert status == 200, host
        status, _ = request(port, "GET", "/config", {"Host": f"lab.example.org:{port}"})
        assert status == 200  # --allowed-host
        # The reported attack: a rebound name starting a real training.
        rebound = {"Host": f"{REBIND}:{port}", "Origin": f"http://{REBIND}:{port}"}
        status, text = request(port, "POST", "/gradio_api/call/start_training", rebound, start)
        assert status == 403 and "is not allowed" in text
        status, _ = request(port, "GET", "/", {"Host": f"{REBIND}:{port}"})
        assert status == 403
        # A page elsewhere posting to the right address (CSRF).
        local = f"127.0.0.1:{port}"
        for origin in ("http://evil.example", "null", f"http://localhost:{port + 1}"):
            status, text = request(
                port,
                "POST",
                "/gradio_api/call/start_training",
                {"Host": local, "Origin": origin},
                start,
            )
            assert status == 403 and "refused" in text, origin
        status, _ = request(
            port,
            "POST",
            "/gradio_api/call/cancel_training",
            {"Host": local, "Sec-Fetch-Site": "cross-site"},
            b'{"data": []}',
        )
        assert status == 403
        # The app's own page, and scripts without a browser, still work.
        status, text = request(
            port,
            "POST",
            "/gradio_api/call/cancel_training",
            {"Host": local, "Origin": f"http://{local}", "Sec-Fetch-Site": "same-origin"},
            b'{"data": []}',
        )
        assert status == 200, text
        status, _ = request(
            port, "POST", "/gradio_api/call/cancel_training", {"Host": local}, b'{"data": []}'
        )
        assert status == 200
    finally:
        demo.close()
    assert list(models.iterdir()) == [], "no training was started"


def test_main_guards_the_launch_and_checks_the_port(tmp_path, monkeypatch, capsys):
    launched = {}

    def fake_launch(self, **kwargs):
        launched.update(kwargs)
        return None, "http://127.0.0.1:1/", None  # (app, local URL, share URL)

    monkeypatch.setattr(gr.Blocks, "launch", fake_launch)
    monkeypatch.setattr(web, "serve_until_interrupted", lambda demo: 0)
    port = free_port()
    argv = ["--models", str(tmp_path), "--port", str(port), "--allowed-host", "lab.example.org"]
    assert web.main(argv, announce=lambda text: None) == 0
    (middleware,) = launched["app_kwargs"]["middleware"]
    assert middleware.cls is host_guard.HostGuard
    assert "lab.example.org" in middleware.kwargs["allowed"]

    for bad in ("99999", "0", "-1"):
        with pytest.raises(SystemExit) as exited:
            web.parse_args(["--port", bad])
        assert exited.value.code == 2
    assert "allowed: 1 to 65535" in capsys.readouterr().err

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        taken = busy.getsockname()[1]
        launched.clear()
        assert web.main(["--models", str(tmp_path), "--port", str(taken)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"cannot listen on 127.0.0.1:{taken}" in err[0]
    assert not launched, "nothing was started"

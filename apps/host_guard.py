"""Refuse requests that a web page elsewhere could make the browser send to the app.

The app listens on 127.0.0.1, has no login and can start, resume and cancel trainings.
Two kinds of pages could drive it from a user's browser:

- **DNS rebinding**: a page on ``attacker.example`` re-points its name at 127.0.0.1; the
  browser then treats the app as same-origin with the page. Its requests carry
  ``Host: attacker.example:PORT``, so only known host names are answered: the loopback
  names (``127.0.0.1``, ``localhost``, ``[::1]``), the address the app was bound to, the
  names given with ``--allowed-host`` (``.example.org`` allows every subdomain) and IP
  addresses typed as such (``http://10.0.0.5:7860``: a literal address cannot be rebound).
- **Cross-site requests** (CSRF): any page can make the browser POST to
  ``http://127.0.0.1:PORT``. A state-changing request (any method but GET, HEAD and
  OPTIONS, and every WebSocket) whose ``Origin`` is not the app's own (scheme aside, the
  same host and port) or whose ``Sec-Fetch-Site`` says ``cross-site`` is refused.
  Requests without those headers (``curl``, ``gradio_client``) come from no web page.

Refusals are a plain 403 with one line, before Gradio sees the request.
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Iterable
from urllib.parse import urlsplit

log = logging.getLogger(__name__)

LOOPBACK_NAMES = frozenset({"127.0.0.1", "localhost", "::1"})
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
ANY_ADDRESS = frozenset({"", "0.0.0.0", "::"})
SHARE_DOMAIN = ".gradio.live"  # --share: the public link's tunnel forwards its own name


def host_name(value: str) -> str:
    """The name part of a ``Host`` header or authority: '[::1]:7860' -> '::1'."""
    value = value.strip().lower()
    if value.startswith("["):  # IPv6 literal
        return value[1 : value.find("]")] if "]" in value else ""
    name = value.rpartition(":")[0] if value.count(":") == 1 else value
    return name.rstrip(".")


def allowed_names(bind_host: str, extra: Iterable[str] = (), share: bool = False) -> set[str]:
    """The host names to answer: loopback, the bound address, ``extra``, the share domain."""
    names = set(LOOPBACK_NAMES)
    bound = bind_host.strip().strip("[]").lower()
    if bound not in ANY_ADDRESS:
        names.add(bound)
    for name in extra:
        cleaned = name.strip().lower()
        if cleaned.startswith("."):
            names.add(cleaned.rstrip("."))
        elif cleaned:
            names.add(host_name(cleaned) or cleaned)
    if share:
        names.add(SHARE_DOMAIN)
    return names


def is_address(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


def name_allowed(name: str, allowed: set[str]) -> bool:
    if not name:
        return False
    return (
        name in allowed
        or is_address(name)
        or any(suffix.startswith(".") and name.endswith(suffix) for suffix in allowed)
    )


def same_origin(origin: str, host: str) -> bool:
    """Whether ``Origin`` names the host and port the request was sent to."""
    if not origin or origin == "null":
        return False
    parts = urlsplit(origin)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return False
    default = {"http": "80", "https": "443"}[parts.scheme]

    def authority(value: str) -> tuple[str, str]:
        value = value.strip().lower()
        if value.startswith("["):
            name, _, rest = value[1:].partition("]")
            port = rest[1:] if rest.startswith(":") else ""
        elif value.count(":") == 1:
            name, _, port = value.partition(":")
        else:
            name, port = value, ""
        return name.rstrip("."), port or default

    return authority(parts.netloc) == authority(host)


class HostGuard:
    """ASGI middleware: refuse unknown ``Host`` names and cross-origin state changes."""

    def __init__(self, app, allowed: Iterable[str] = LOOPBACK_NAMES):
        self.app = app
        self.allowed = set(allowed)

    def refusal(self, scope) -> str | None:
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        host = headers.get("host", "")
        if not name_allowed(host_name(host), self.allowed):
            return (
                f"host {host!r} is not allowed; open the app as http://127.0.0.1 or "
                "http://localhost, or start it with --allowed-host NAME"
            )
        changes_state = scope["type"] == "websocket" or scope.get("method") not in SAFE_METHODS
        if not changes_state:
            return None
        origin = headers.get("origin")
        if origin is not None and not same_origin(origin, host):
            return f"cross-origin request from {origin!r} refused"
        if headers.get("sec-fetch-site", "").lower() == "cross-site":
            return "cross-site request refused"
        return None

    async def __call__(self, scope, receive, send):
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        reason = self.refusal(scope)
        if reason is None:
            await self.app(scope, receive, send)
            return
        log.warning("refused %s %s: %s", scope.get("method", "WS"), scope.get("path"), reason)
        if scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1008})
            return
        body = (reason + "\n").encode("utf-8")
        await send(
            {
                "type": "http.response.start",
                "status": 403,
                "headers": [
                    (b"content-type", b"text/plain; charset=utf-8"),
                    (b"content-length", str(len(body)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})


def app_kwargs(bind_host: str, extra: Iterable[str] = (), share: bool = False) -> dict:
    """``demo.launch(app_kwargs=...)``: the Gradio app with ``HostGuard`` in front."""
    from starlette.middleware import Middleware

    allowed = allowed_names(bind_host, extra, share)
    return {"middleware": [Middleware(HostGuard, allowed=allowed)]}

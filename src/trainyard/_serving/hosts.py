"""Which ``Host`` and ``Origin`` headers the scoring server accepts (DNS rebinding, cross-site calls).

A DNS-rebinding attack serves a page from the attacker's domain, then points that domain at
127.0.0.1: the browser now sends the page's requests to the local service, with the attacker's
name in ``Host``. So the server accepts only ``Host`` names it expects:

* loopback: ``localhost``, ``*.localhost`` (browsers resolve those themselves, never through DNS)
  and loopback addresses (``127.0.0.0/8``, ``::1``);
* the address or name it was bound to; when bound to a wildcard (``0.0.0.0``, ``::``), any IP
  literal and this machine's host name: a rebinding page cannot make a browser send either;
* the names in ``allowed_hosts`` (``.example.com`` also allows every subdomain; ``*`` turns the
  check off).

A request without ``Host`` (HTTP/1.0 tools) is accepted: browsers always send one.

``Origin`` is sent by browsers on cross-origin requests (and on same-origin POSTs). A request
whose ``Origin`` is the service itself (same scheme-less authority as an accepted ``Host``) is
same-origin; any other origin must be in ``allowed_origins`` (``*``: any), else it is refused
before it reaches ``run()``, even for "simple" requests that browsers send without a preflight.

Example::

    policy = HostPolicy(bind_host="127.0.0.1", allowed_hosts=("scoring.internal",))
    policy.host_allowed(b"localhost:5001")       # True
    policy.host_allowed(b"attacker.example")     # False
"""

from __future__ import annotations

import ipaddress
import re
import socket
from collections.abc import Iterable

_NAME = re.compile(r"^[a-z0-9_]([a-z0-9_.-]*[a-z0-9_])?$")
_WILDCARDS = frozenset({"0.0.0.0", "::", ""})
_CACHE_LIMIT = 256


def split_host(value: str) -> tuple[str, str] | None:
    """``(name, port)`` of a ``Host`` value, lowercased, trailing dot dropped; ``None`` if malformed.

    Example::

        split_host("[::1]:5001")   # ('::1', '5001')
    """
    v = value.strip().lower()
    if not v or any(c.isspace() or not c.isprintable() for c in v):
        return None
    if v.startswith("["):
        end = v.find("]")
        if end < 0:
            return None
        name, rest = v[1:end], v[end + 1 :]
        if rest and not (rest.startswith(":") and rest[1:].isdigit()):
            return None
        return name, rest[1:]
    name, sep, port = v.partition(":")
    if sep and (not port.isdigit() or ":" in port):
        return None
    return name.rstrip("."), port


def _ip(name: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(name)
    except ValueError:
        return None


def is_loopback_name(host: str) -> bool:
    """Whether ``host`` (a name or an address, no port) can only mean this machine's loopback.

    Names other than ``localhost`` are resolved; every address they resolve to must be loopback.

    Example::

        is_loopback_name("127.0.0.1"), is_loopback_name("0.0.0.0")   # (True, False)
    """
    name = host.strip().lower().rstrip(".")
    if name.startswith("[") and name.endswith("]"):
        name = name[1:-1]
    ip = _ip(name)
    if ip is not None:
        return ip.is_loopback
    if name == "localhost" or name.endswith(".localhost"):
        return True
    if not name or name in _WILDCARDS:
        return False
    try:
        infos = socket.getaddrinfo(name, None)
    except OSError:
        return False
    addresses = {_ip(str(info[4][0]).split("%")[0]) for info in infos}
    return bool(addresses) and all(a is not None and a.is_loopback for a in addresses)


class HostPolicy:
    """The accepted ``Host`` and ``Origin`` values of one server (see the module docstring).

    Decisions about header values are cached (accepted ones only, a bounded number), so the check
    costs a dictionary lookup per request.

    Example::

        HostPolicy("0.0.0.0", allowed_origins=("https://app.example.com",))
    """

    def __init__(
        self,
        bind_host: str,
        allowed_hosts: Iterable[str] = (),
        allowed_origins: Iterable[str] = (),
    ) -> None:
        bind = bind_host.strip().lower().strip("[]").rstrip(".")
        self._bind_ip = _ip(bind)
        self._wildcard = bind in _WILDCARDS
        names: set[str] = set()
        suffixes: list[str] = []
        self.any_host = False
        for raw in allowed_hosts:
            entry = raw.strip().lower().strip("[]").rstrip(".")
            if entry == "*":
                self.any_host = True
            elif entry.startswith("."):
                suffixes.append(entry)
            elif entry:
                names.add(entry)
        if self._bind_ip is None and not self._wildcard:
            names.add(bind)
        if self._wildcard or not is_loopback_name(bind):
            # Reached from other machines, clients may use this machine's own name.
            names.add(socket.gethostname().lower())
        self._names = frozenset(names)
        self._ips = frozenset(ip for ip in (_ip(n) for n in names) if ip is not None)
        self._suffixes = tuple(suffixes)
        origins = {o.strip().lower().rstrip("/") for o in allowed_origins}
        self.any_origin = "*" in origins
        self._origins = frozenset(o for o in origins if o and o != "*")
        self._host_cache: dict[bytes, bool] = {}

    # -- Host -----------------------------------------------------------------------------------
    def host_allowed(self, value: bytes) -> bool:
        """Whether a ``Host`` header value is accepted."""
        if value in self._host_cache:
            return True
        ok = self.any_host or self._decide_host(value.decode("latin-1"))
        if ok and len(self._host_cache) < _CACHE_LIMIT:
            self._host_cache[value] = True
        return ok

    def _decide_host(self, value: str) -> bool:
        parts = split_host(value)
        if parts is None:
            return False
        name = parts[0]
        ip = _ip(name)
        if ip is not None:
            return ip.is_loopback or self._wildcard or ip == self._bind_ip or ip in self._ips
        if not _NAME.match(name):
            return False
        if name == "localhost" or name.endswith(".localhost") or name in self._names:
            return True
        return any(name.endswith(s) or name == s[1:] for s in self._suffixes)

    # -- Origin ---------------------------------------------------------------------------------
    def origin_allowed(self, origin: bytes, host: bytes | None) -> bool:
        """Whether a request carrying ``Origin: origin`` may proceed (``host``: its ``Host``)."""
        return (
            self.any_origin or self.same_origin(origin, host) or self.cross_origin_allowed(origin)
        )

    def cross_origin_allowed(self, origin: bytes) -> bool:
        """Whether ``origin`` is one of the configured allowed origins."""
        return self.any_origin or origin.decode("latin-1").lower().rstrip("/") in self._origins

    @staticmethod
    def same_origin(origin: bytes, host: bytes | None) -> bool:
        """Whether ``origin`` is ``http(s)://<host>`` for the request's own (accepted) ``Host``."""
        if host is None:
            return False
        _, sep, authority = origin.partition(b"://")
        return bool(sep) and authority.lower() == host.lower()

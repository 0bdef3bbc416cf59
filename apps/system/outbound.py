"""The one outbound HTTP client: timeouts always, and no private addresses unless allowed.

Every host name is resolved first and each address checked, so a webhook cannot reach the
metadata service (169.254.169.254), the loopback or the private network unless
CADENZA_OUTBOUND_ALLOW (a list of networks, e.g. "127.0.0.0/8") lets it.
"""

from __future__ import annotations

import ipaddress
import socket
from urllib.parse import urlsplit

import requests
from django.conf import settings

TIMEOUT = (3.05, 10)  # connect, read


class OutboundRefused(Exception):
    """The destination is not allowed; nothing was sent."""


def _allowed_networks() -> list:
    return [ipaddress.ip_network(net, strict=False) for net in settings.CADENZA_OUTBOUND_ALLOW]


def check_destination(url: str) -> None:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise OutboundRefused(f"Only http(s) URLs with a host are allowed, not {parts.scheme!r}.")
    try:
        infos = socket.getaddrinfo(parts.hostname, parts.port or 443, proto=socket.IPPROTO_TCP)
    except socket.gaierror as error:
        raise OutboundRefused(f"Cannot resolve {parts.hostname}: {error.strerror}") from None
    allowed = _allowed_networks()
    for info in infos:
        address = ipaddress.ip_address(info[4][0])
        if address.is_global or any(address in network for network in allowed):
            continue
        raise OutboundRefused(
            f"{parts.hostname} resolves to {address}, a private, loopback or link-local address;"
            " refused (allow it with CADENZA_OUTBOUND_ALLOW)."
        )


def request(method: str, url: str, **kwargs) -> requests.Response:
    check_destination(url)
    kwargs.setdefault("timeout", TIMEOUT)
    kwargs.setdefault("allow_redirects", False)  # a redirect could point anywhere
    return requests.request(method, url, **kwargs)

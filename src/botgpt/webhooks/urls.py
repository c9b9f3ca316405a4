"""Where a webhook may point: no loopback, private, link-local or otherwise non-public
addresses (unless allowed), checked on the addresses the host resolves to.

Delivery connects to an address checked here (the URL is pinned to it, with the original
Host header and TLS server name), so a DNS answer that changes in between cannot redirect
a POST to an internal service.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from dataclasses import dataclass

import httpx

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class UnsafeUrl(Exception):
    """The URL's host is, or resolves to, an address webhooks may not reach."""


class UnresolvableUrl(Exception):
    """The URL's host does not resolve (right now)."""


@dataclass(frozen=True, slots=True)
class Target:
    """A checked destination: the URL pinned to one address, and how to name the host."""

    url: httpx.URL
    host_header: str
    sni_hostname: str


def is_public(ip: IPAddress) -> bool:
    """Whether `ip` is a globally routable unicast address."""
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_global and not (
        ip.is_multicast
        or ip.is_loopback
        or ip.is_private
        or ip.is_link_local
        or ip.is_reserved
        or ip.is_unspecified
    )


def literal_ip(host: str) -> IPAddress | None:
    """The host as an IP address when it is one, else None."""
    try:
        return ipaddress.ip_address(host.strip("[]").split("%", 1)[0])
    except ValueError:
        return None


def check_literal(url: str, allow_private: bool) -> None:
    """Refuse a URL whose host is a non-public IP literal or a local name (at creation)."""
    host = httpx.URL(url).host.lower().rstrip(".")
    if allow_private:
        return
    ip = literal_ip(host)
    if ip is not None and not is_public(ip):
        raise UnsafeUrl(f"{host} is not a public address")
    if host == "localhost" or host.endswith((".localhost", ".local", ".internal")):
        raise UnsafeUrl(f"{host} is a local name")


async def resolve(host: str, port: int) -> list[IPAddress]:
    """The addresses `host` resolves to (an IP literal resolves to itself)."""
    ip = literal_ip(host)
    if ip is not None:
        return [ip]
    loop = asyncio.get_running_loop()
    try:
        infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError) as exc:
        raise UnresolvableUrl(f"{host} does not resolve") from exc
    found: list[IPAddress] = []
    for *_, sockaddr in infos:
        addr = ipaddress.ip_address(str(sockaddr[0]).split("%", 1)[0])
        if addr not in found:
            found.append(addr)
    if not found:
        raise UnresolvableUrl(f"{host} does not resolve")
    return found


async def check_resolved(url: str, allow_private: bool) -> None:
    """Refuse a URL whose host resolves to any non-public address (at creation and update).

    A host that does not resolve now is accepted: delivery checks it again.
    """
    check_literal(url, allow_private)
    if allow_private:
        return
    parsed = httpx.URL(url)
    try:
        addresses = await resolve(parsed.raw_host.decode("ascii"), parsed.port or 443)
    except UnresolvableUrl:
        return
    if any(not is_public(ip) for ip in addresses):
        raise UnsafeUrl(f"{parsed.host} resolves to a non-public address")


async def pin(url: str, allow_private: bool) -> Target:
    """Resolve the URL's host, check every address, and pin the URL to the first one."""
    check_literal(url, allow_private)
    parsed = httpx.URL(url)
    host = parsed.raw_host.decode("ascii")
    default_port = 443 if parsed.scheme == "https" else 80
    port = parsed.port or default_port
    addresses = await resolve(host, port)
    if not allow_private and any(not is_public(ip) for ip in addresses):
        raise UnsafeUrl(f"{parsed.host} resolves to a non-public address")
    shown = f"[{host}]" if ":" in host else host
    host_header = shown if port == default_port else f"{shown}:{port}"
    return Target(parsed.copy_with(host=str(addresses[0])), host_header, host)

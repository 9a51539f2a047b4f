"""Guard against server-side request forgery: a URL taken from a remote CSV must not make us
reach loopback, private, link-local or cloud-metadata addresses, unless an operator allowed it."""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterable
from dataclasses import dataclass

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


class BlockedAddress(Exception):
    pass


@dataclass(frozen=True)
class AllowList:
    hosts: frozenset[str]
    networks: tuple[IPNetwork, ...]

    @classmethod
    def parse(cls, items: Iterable[str]) -> AllowList:
        hosts: set[str] = set()
        networks: list[IPNetwork] = []
        for item in items:
            item = item.strip()
            if not item:
                continue
            try:
                networks.append(ipaddress.ip_network(item, strict=False))
            except ValueError:
                hosts.add(item.lower().rstrip("."))
        return cls(frozenset(hosts), tuple(networks))

    def allows(self, host: str, address: IPAddress | None = None) -> bool:
        if host.lower().rstrip(".") in self.hosts:
            return True
        return address is not None and any(address in net for net in self.networks)


def is_internal(address: IPAddress) -> bool:
    """Anything that is not a public address, including IPv4 hidden inside IPv6 forms."""
    if isinstance(address, ipaddress.IPv6Address):
        teredo = address.teredo
        embedded = address.ipv4_mapped or address.sixtofour or (teredo[1] if teredo else None)
        if embedded is not None:
            return is_internal(embedded)
    return (
        not address.is_global
        or address.is_loopback
        or address.is_private
        or address.is_link_local
        or address.is_multicast
        or address.is_reserved
        or address.is_unspecified
        or str(address) == "169.254.169.254"
    )


def check_host(host: str, port: int, allow: AllowList) -> list[str] | None:
    """The addresses ``host`` may be reached at; raises BlockedAddress when it resolves to an
    internal address not allowed. None: allowed by name, resolve as usual. Connecting to
    exactly these addresses keeps a second DNS answer from swapping them (DNS rebinding)."""
    if allow.allows(host):
        return None
    try:
        infos = socket.getaddrinfo(host, port, proto=socket.IPPROTO_TCP)
    except socket.gaierror as e:
        raise OSError(f"cannot resolve {host}: {e.strerror}") from None
    addresses: list[str] = []
    for info in infos:
        address = ipaddress.ip_address(info[4][0])
        if is_internal(address) and not allow.allows(host, address):
            raise BlockedAddress(
                f"{host} resolves to internal address {address}; add it to "
                "LIVEDASH_FETCH_ALLOW_HOSTS to allow it"
            )
        if str(address) not in addresses:
            addresses.append(str(address))
    return addresses

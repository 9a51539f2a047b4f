"""Guard against server-side request forgery: a URL taken from a remote CSV must not make us
reach loopback, private, link-local or cloud-metadata addresses, unless an operator allowed it."""

from __future__ import annotations

import ipaddress
import queue
import socket
import threading
from collections.abc import Callable, Iterable
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from typing import TypeVar

T = TypeVar("T")

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


def resolve(host: str, port: int) -> list[str]:
    """Every address of ``host``, in the resolver's order, without duplicates."""
    try:
        infos = socket.getaddrinfo(host, port, proto=socket.IPPROTO_TCP)
    except socket.gaierror as e:
        raise OSError(f"cannot resolve {host}: {e.strerror}") from None
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


class Lookups:
    """Name lookups with a time limit. `getaddrinfo` has none and cannot be interrupted, so
    it runs on one of a few daemon threads; the caller waits at most ``timeout`` and then
    leaves the lookup behind: it holds no fetch slot and never delays the process's exit."""

    def __init__(self, threads: int = 16) -> None:
        self._max = threads
        self._work: queue.SimpleQueue[tuple[Future[object], Callable[[], object]]] = (
            queue.SimpleQueue()
        )
        self._lock = threading.Lock()
        self._threads = 0
        self._idle = 0

    def run(self, fn: Callable[[], T], timeout: float) -> T:
        """``fn()``'s result or exception; TimeoutError when it takes longer than ``timeout``."""
        future: Future[object] = Future()
        with self._lock:
            if self._idle == 0 and self._threads < self._max:
                self._threads += 1
                threading.Thread(target=self._serve, name="livedash-lookup", daemon=True).start()
        self._work.put((future, fn))
        try:
            return future.result(max(0.0, timeout))  # type: ignore[return-value]
        except FutureTimeout:
            future.cancel()
            raise TimeoutError("name lookup took too long") from None

    def _serve(self) -> None:
        while True:
            with self._lock:
                self._idle += 1
            future, fn = self._work.get()
            with self._lock:
                self._idle -= 1
            if not future.set_running_or_notify_cancel():
                continue  # its caller gave up before it started
            try:
                future.set_result(fn())
            except BaseException as e:
                future.set_exception(e)


LOOKUPS = Lookups()
"""Shared by every fetcher in the process: a few threads are enough for all of them."""


def is_loopback(host: str) -> bool:
    """Loopback by name or literal address; never resolved (a DNS answer can lie)."""
    name = host.lower().rstrip(".").strip("[]")
    if name == "localhost" or name.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False

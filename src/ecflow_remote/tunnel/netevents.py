"""The system's network changes as they happen: Linux netlink, macOS SystemConfiguration, nothing elsewhere.

Each watcher calls `changed(list of Change)` on the tunnel's event loop, nothing in between (no polling): what a
change means for the ssh connection is netwatch.py's to decide.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import ctypes.util
import errno
import socket
import struct
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, Protocol

# linux/rtnetlink.h
RTM_NEWLINK, RTM_DELLINK = 16, 17
RTM_NEWADDR, RTM_DELADDR, RTM_GETADDR = 20, 21, 22
NLM_F_REQUEST, NLM_F_DUMP = 0x1, 0x300
RTM_NEWROUTE, RTM_DELROUTE = 24, 25
NLMSG_ERROR, NLMSG_DONE = 2, 3
RTMGRP_LINK = 0x1
RTMGRP_IPV4_IFADDR = 0x10
RTMGRP_IPV4_ROUTE = 0x40
RTMGRP_IPV6_IFADDR = 0x100
RTMGRP_IPV6_ROUTE = 0x400
GROUPS = RTMGRP_LINK | RTMGRP_IPV4_IFADDR | RTMGRP_IPV4_ROUTE | RTMGRP_IPV6_IFADDR | RTMGRP_IPV6_ROUTE
IFA_ADDRESS, IFA_LOCAL = 1, 2
RTA_DST = 1
IFF_LOWER_UP = 0x10000  # the carrier: a cable in, a Wi-Fi associated
RTM_F_CLONED = 0x200  # IPv6 route-cache entries (path MTU, redirects): not a change of the routes
NLMSG = struct.Struct("=IHHII")  # length, type, flags, sequence, port
IFINFO = struct.Struct("=BxHiII")  # family, type, index, flags, change
IFADDR = struct.Struct("=BBBBI")  # family, prefix length, flags, scope, index
RTMSG = struct.Struct("=BBBBBBBBI")  # family, dst/src length, tos, table, protocol, scope, type, flags
RTATTR = struct.Struct("=HH")  # length, type


@dataclass(frozen=True)
class Change:
    """One change the system reported. kind "lost": events were dropped (a full buffer) or the system does not say
    which (macOS): anything may have changed."""

    kind: Literal["address", "route", "link", "lost"]
    added: bool = True  # False: an address, route or interface went away
    address: str | None = None  # an address change's address
    index: int | None = None  # the interface
    carrier: bool | None = None  # a link change: whether the interface has its carrier now
    dst: str | None = None  # a route change's destination, "address/length" (a default route's: "0.0.0.0/0")


def _align(n: int) -> int:
    return (n + 3) & ~3


def _attributes(data: bytes, start: int, end: int) -> dict[int, bytes]:
    attrs: dict[int, bytes] = {}
    while start + RTATTR.size <= end:
        length, kind = RTATTR.unpack_from(data, start)
        if length < RTATTR.size or start + length > end:
            break
        attrs.setdefault(kind, data[start + RTATTR.size : start + length])
        start += _align(length)
    return attrs


def parse(data: bytes) -> list[Change]:
    """The link, address and route changes in one netlink datagram (rtnetlink(7)); anything else is skipped."""
    changes: list[Change] = []
    offset = 0
    while offset + NLMSG.size <= len(data):
        length, kind, _, _, _ = NLMSG.unpack_from(data, offset)
        if length < NLMSG.size or offset + length > len(data):
            break
        body, end = offset + NLMSG.size, offset + length
        if kind in (RTM_NEWLINK, RTM_DELLINK) and body + IFINFO.size <= end:
            _, _, index, flags, _ = IFINFO.unpack_from(data, body)
            carrier = kind == RTM_NEWLINK and bool(flags & IFF_LOWER_UP)
            changes.append(Change("link", kind == RTM_NEWLINK, index=index, carrier=carrier))
        elif kind in (RTM_NEWADDR, RTM_DELADDR) and body + IFADDR.size <= end:
            family, _, _, _, index = IFADDR.unpack_from(data, body)
            attrs = _attributes(data, body + IFADDR.size, end)
            address = _address(family, attrs.get(IFA_LOCAL, attrs.get(IFA_ADDRESS)))
            changes.append(Change("address", kind == RTM_NEWADDR, address=address, index=index))
        elif kind in (RTM_NEWROUTE, RTM_DELROUTE) and body + RTMSG.size <= end:
            family, prefix, *_, flags = RTMSG.unpack_from(data, body)
            if not flags & RTM_F_CLONED:
                raw = _attributes(data, body + RTMSG.size, end).get(RTA_DST)
                address = _address(family, raw if prefix else bytes(16 if family == socket.AF_INET6 else 4))
                dst = f"{address}/{prefix}" if address is not None else None
                changes.append(Change("route", kind == RTM_NEWROUTE, dst=dst))
        offset += _align(length)
    return changes


def _address(family: int, raw: bytes | None) -> str | None:
    if raw is None or family not in (socket.AF_INET, socket.AF_INET6):
        return None
    with contextlib.suppress(ValueError):
        return socket.inet_ntop(family, raw)
    return None


class Watcher(Protocol):
    def stop(self) -> None: ...


Changed = Callable[[list[Change]], None]


class NetlinkWatcher:
    """Linux: an AF_NETLINK socket in the address, route and link groups, read by the loop when the kernel writes."""

    def __init__(self, loop: asyncio.AbstractEventLoop, changed: Changed) -> None:
        self.loop = loop
        self.changed = changed
        self.sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC, socket.NETLINK_ROUTE)
        try:
            self.sock.setblocking(False)
            self.sock.bind((0, GROUPS))
            # Every address there is now, reported as added (which interface has the connection's is asked later).
            ask = IFADDR.pack(socket.AF_UNSPEC, 0, 0, 0, 0)
            self.sock.send(NLMSG.pack(NLMSG.size + len(ask), RTM_GETADDR, NLM_F_REQUEST | NLM_F_DUMP, 1, 0) + ask)
            loop.add_reader(self.sock.fileno(), self._readable)
        except OSError:
            self.sock.close()
            raise

    def _readable(self) -> None:
        changes: list[Change] = []
        while True:
            try:
                data = self.sock.recv(65536)
            except (BlockingIOError, InterruptedError):
                break
            except OSError as e:
                # ENOBUFS: the kernel dropped events (we were stopped, or a burst): look again. Anything else: this
                # socket is done for; keepalives remain.
                changes.append(Change("lost"))
                if e.errno == errno.ENOBUFS:
                    continue
                self.stop()
                break
            changes += parse(data)
        if changes:
            self.changed(changes)

    def stop(self) -> None:
        if self.sock.fileno() >= 0:
            with contextlib.suppress(Exception):
                self.loop.remove_reader(self.sock.fileno())
            self.sock.close()


class SystemConfigurationWatcher:
    """macOS: SystemConfiguration's dynamic store calls back on a dispatch queue when any interface's addresses or
    link, or the primary service (the default route), change — what Wi-Fi to a hotspot, a VPN up or down, and a
    wake from sleep do. Through ctypes (no pyobjc needed). Untested here (Linux machines only): it degrades to no
    watcher if any call fails, and keepalives remain."""

    KEYS = ("State:/Network/Global/IPv4", "State:/Network/Global/IPv6")
    PATTERNS = ("State:/Network/Interface/[^/]+/(IPv4|IPv6|Link)",)

    def __init__(self, loop: asyncio.AbstractEventLoop, changed: Changed) -> None:
        cf = ctypes.CDLL(ctypes.util.find_library("CoreFoundation"))
        sc = ctypes.CDLL(ctypes.util.find_library("SystemConfiguration"))
        system = ctypes.CDLL(ctypes.util.find_library("System"))  # libdispatch
        vp = ctypes.c_void_p
        callback_type = ctypes.CFUNCTYPE(None, vp, vp, vp)  # SCDynamicStoreCallBack(store, changed keys, info)
        _declare(cf.CFStringCreateWithCString, vp, vp, ctypes.c_char_p, ctypes.c_uint32)
        _declare(cf.CFArrayCreate, vp, vp, ctypes.POINTER(vp), ctypes.c_long, vp)
        _declare(cf.CFRelease, None, vp)
        _declare(sc.SCDynamicStoreCreate, vp, vp, vp, callback_type, vp)
        _declare(sc.SCDynamicStoreSetNotificationKeys, ctypes.c_bool, vp, vp, vp)
        _declare(sc.SCDynamicStoreSetDispatchQueue, ctypes.c_bool, vp, vp)
        _declare(system.dispatch_queue_create, vp, ctypes.c_char_p, vp)
        utf8 = 0x08000100  # kCFStringEncodingUTF8
        array_callbacks = ctypes.addressof(vp.in_dll(cf, "kCFTypeArrayCallBacks"))

        def cf_array(texts: tuple[str, ...]) -> int:
            items = [cf.CFStringCreateWithCString(None, t.encode(), utf8) for t in texts]
            array: int = cf.CFArrayCreate(None, (vp * len(items))(*items), len(items), array_callbacks)
            for item in items:
                cf.CFRelease(item)
            return array

        def called(_store: object, _keys: object, _info: object) -> None:
            # On a dispatch thread: the changed keys are not read (any of them may concern the first hop).
            loop.call_soon_threadsafe(changed, [Change("lost")])

        self._cf, self._sc = cf, sc
        self._callback = callback_type(called)  # kept: the store calls it for as long as it lives
        name = cf.CFStringCreateWithCString(None, b"ecflow-remote", utf8)
        self._store = sc.SCDynamicStoreCreate(None, name, self._callback, None)
        cf.CFRelease(name)
        if not self._store:
            raise OSError("SCDynamicStoreCreate failed")
        keys, patterns = cf_array(self.KEYS), cf_array(self.PATTERNS)
        try:
            queue = system.dispatch_queue_create(b"ecflow-remote.netwatch", None)
            if not (
                sc.SCDynamicStoreSetNotificationKeys(self._store, keys, patterns)
                and sc.SCDynamicStoreSetDispatchQueue(self._store, queue)
            ):
                self.stop()
                raise OSError("SCDynamicStoreSetNotificationKeys/SetDispatchQueue failed")
        finally:
            cf.CFRelease(keys)
            cf.CFRelease(patterns)

    def stop(self) -> None:
        if self._store:
            self._sc.SCDynamicStoreSetDispatchQueue(self._store, None)
            self._cf.CFRelease(self._store)
            self._store = None


def _declare(function: Any, restype: Any, *argtypes: Any) -> None:
    function.restype, function.argtypes = restype, list(argtypes)


def watch(loop: asyncio.AbstractEventLoop, changed: Changed) -> tuple[Watcher | None, str | None]:
    """The platform's watcher, calling `changed` on `loop`; (None, why) where there is none."""
    try:
        if sys.platform.startswith("linux"):
            return NetlinkWatcher(loop, changed), None
        if sys.platform == "darwin":
            return SystemConfigurationWatcher(loop, changed), None
    except (OSError, AttributeError, ValueError) as e:  # no netlink (a sandbox), a framework that is not there
        return None, f"network changes are not watched ({e}): a dead link is noticed by keepalives (about 12 s)"
    return None, f"network changes are not watched on {sys.platform}: a dead link is noticed by keepalives (about 12 s)"

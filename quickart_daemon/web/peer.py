"""Who is at the other end of a loopback connection: the user owning the client's socket.

On one machine the kernel knows which user opened each TCP socket: Linux lists every socket
with its two addresses and its owner's uid in /proc/net/tcp and /proc/net/tcp6 (what
`ss -e` and identd read). A browser of the user running the page, on the same machine, may
then write without the token: that user can read config.yaml, token included, anyway. The
lookup only answers for loopback connections; across machines nothing is trusted but the token.
"""

from __future__ import annotations

import ipaddress
import socket
import struct

TABLES = ("/proc/net/tcp", "/proc/net/tcp6")


def loopback_peer_uid(client: tuple[str, int] | None, server: tuple[str, int] | None) -> int | None:
    """The uid owning the client end of a loopback TCP connection, or None (not loopback, not
    found, or no /proc: then nobody is trusted this way)."""
    if client is None or server is None:
        return None
    try:
        want_client, want_server = (_normal(client[0]), int(client[1])), (_normal(server[0]), int(server[1]))
    except ValueError:
        return None  # not an IP address (a test client, a Unix socket)
    if not want_client[0].is_loopback:
        return None
    for table in TABLES:
        try:
            with open(table) as fh:
                next(fh, None)  # the header line
                for line in fh:
                    fields = line.split()
                    if len(fields) > 7 and _endpoint(fields[1]) == want_client and _endpoint(fields[2]) == want_server:
                        return int(fields[7])
        except (OSError, ValueError):
            continue
    return None


def _normal(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    address = ipaddress.ip_address(host.strip("[]"))
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        return address.ipv4_mapped
    return address


def _endpoint(text: str) -> tuple[ipaddress.IPv4Address | ipaddress.IPv6Address, int]:
    """An address of /proc/net/tcp{,6}: hex 32-bit words in host byte order, then a hex port."""
    host, port = text.split(":")
    words = [int(host[i:i + 8], 16) for i in range(0, len(host), 8)]
    raw = b"".join(struct.pack("=I", w) for w in words)
    family = socket.AF_INET if len(raw) == 4 else socket.AF_INET6
    return _normal(socket.inet_ntop(family, raw)), int(port, 16)

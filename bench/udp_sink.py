#!/usr/bin/env python3
"""UDP sink for bench/client-vs-collectd.sh: receives on 127.0.0.1, counts datagrams,
bytes and the values they carry, and keeps the running totals in a file.

    udp_sink.py KIND PORT_FILE STATS_FILE

KIND is `hbc` (docs/protocol.md: reading count R after the host name) or `collectd`
(binary network protocol: number of values in each "values" part, type 0x0006).
Binds an ephemeral port on 127.0.0.1 and writes it to PORT_FILE; after every datagram
replaces STATS_FILE with "datagrams bytes values undecodable heartbeats" (a few writes
per second); heartbeats counts hbc datagrams with part = 0 (always 0 for collectd).
"""

import os
import socket
import struct
import sys


def hbc_values(d: bytes) -> int:
    if len(d) < 38 or d[0:2] != b"HB":
        return -1
    n = d[35]
    if len(d) < 38 + n:
        return -1
    return struct.unpack(">H", d[36 + n : 38 + n])[0]


def collectd_values(d: bytes) -> int:
    off, total = 0, 0
    while off + 4 <= len(d):
        typ, length = struct.unpack(">HH", d[off : off + 4])
        if length < 4 or off + length > len(d):
            return -1
        if typ == 0x0006 and length >= 6:
            total += struct.unpack(">H", d[off + 4 : off + 6])[0]
        off += length
    return total


def main() -> None:
    kind, port_file, stats_file = sys.argv[1:4]
    count = {"hbc": hbc_values, "collectd": collectd_values}[kind]
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
    s.bind(("127.0.0.1", 0))
    tmp = port_file + ".tmp"
    with open(tmp, "w") as f:
        f.write(f"{s.getsockname()[1]}\n")
    os.replace(tmp, port_file)
    datagrams = nbytes = values = bad = heartbeats = 0
    tmp = stats_file + ".tmp"
    while True:
        d = s.recv(65536)
        datagrams += 1
        nbytes += len(d)
        v = count(d)
        if v < 0:
            bad += 1
        else:
            values += v
            if kind == "hbc" and d[33] == 0:
                heartbeats += 1
        with open(tmp, "w") as f:
            f.write(f"{datagrams} {nbytes} {values} {bad} {heartbeats}\n")
        os.replace(tmp, stats_file)


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Writes the seed inputs of every fuzz target into fuzz/corpus/<target>/ (docs/fuzzing.md).

Seeds are realistic inputs libFuzzer starts from: heartbeats in the wire format of
docs/protocol.md (signed with the targets' key), the sample configs and every example of
docs/configuration.md, output of the Nagios plugins installed here, journal segments in
the format of server/src/journal.rs, and API bodies from docs/openapi.yaml. Run from the
repository root; they join the unpacked corpora there (`fuzz/run.sh unpack all` first), and
`fuzz/run.sh cmin all` minimises them and writes the archives fuzz/corpus/<target>.tar.gz.
"""

import hashlib
import hmac
import json
import os
import re
import shlex
import struct
import subprocess
import zlib

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "fuzz", "corpus")
KEY = b"fuzz-secret"  # the key fuzz_targets/heartbeat_decode.rs verifies with


def write(target, name, data):
    d = os.path.join(OUT, target)
    os.makedirs(d, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


# --- heartbeats (docs/protocol.md) -------------------------------------------------------


def reading(key, value, unit="", level=0, message="", threshold=""):
    k = key.encode()
    out = bytes([len(k)]) + k
    if isinstance(value, bool):
        out += bytes([2, int(value)])
    elif isinstance(value, int):
        out += bytes([1]) + struct.pack(">q", value)
    elif isinstance(value, float):
        out += bytes([0]) + struct.pack(">d", value)
    else:
        t = value.encode()
        out += bytes([3]) + struct.pack(">H", len(t)) + t
    u, m, th = unit.encode(), message.encode(), threshold.encode()
    out += bytes([len(u)]) + u + bytes([level]) + struct.pack(">H", len(m)) + m
    return out + bytes([len(th)]) + th


def datagram(host, readings, seq=1, level=0, part=0, parts=1, key=None, instance=1_700_000_000_000):
    h = host.encode()
    body = b"HB\x01" + bytes([1 if key else 0])
    body += struct.pack(">QQQI", instance, seq, (instance + seq * 10_000) % 2**64, 10_000)
    body += bytes([level, part, parts, len(h)]) + h + struct.pack(">H", len(readings))
    body += b"".join(readings)
    if key:
        body += hmac.new(key, body, hashlib.sha256).digest()
    return body


def heartbeats():
    typical = [
        reading("cpu.usage_percent", 12.5, "%", 0, "", "warn=80 crit=95"),
        reading("cpu.load1", 0.42),
        reading("memory.used_percent", 63.0, "%"),
        reading("fs./.used_percent", 91.0, "%", 1, "", "warn=85 crit=95"),
        reading("net.eth0.rx_bytes", 123456789, "B"),
        reading("os.kernel", "6.1.0-18-amd64"),
        reading("nagios.disk.state", 2, "", 2, "DISK CRITICAL - free space: / 1%"),
        reading("hbc.plugin.cpu", True),
    ]
    write("heartbeat_decode", "unsigned", datagram("web1.example.org", typical))
    write("heartbeat_decode", "signed", datagram("web1.example.org", typical, key=KEY))
    write("heartbeat_decode", "signed-wrong-key", datagram("db1", typical, key=b"other"))
    write("heartbeat_decode", "empty", datagram("h", []))
    write("heartbeat_decode", "nan", datagram("h", [reading("x", float("nan")), reading("y", float("-inf"))]))
    write("heartbeat_decode", "long-text", datagram("h", [reading("t", "é" * 600, message="m" * 1100)]))
    # Two parts of one heartbeat, then the next heartbeat with a gap, then a replay.
    seq = [
        datagram("web1", typical[:4], seq=5, part=0, parts=2),
        datagram("web1", typical[4:], seq=5, part=1, parts=2),
        datagram("web1", typical, seq=9, level=1),
        datagram("web1", typical, seq=9, level=1),
        datagram("web2", typical[:2], seq=1, instance=5),
        datagram("web2", typical[:2], seq=2**64 - 1, instance=5),
    ]
    write("heartbeat_decode", "sequence", b"".join(seq))
    write("heartbeat_decode", "four-hosts", b"".join(datagram(f"h{i}", typical[:1]) for i in range(4)))


# --- configs ---------------------------------------------------------------------------


def configs():
    for name in ("hbc.yaml", "hbd.yaml"):
        write("config", name, subprocess.check_output(["git", "-C", ROOT, "show", f"HEAD:packaging/{name}"]))
    doc = subprocess.check_output(["git", "-C", ROOT, "show", "HEAD:docs/configuration.md"]).decode()
    for line in doc.splitlines():
        m = re.match(r"\| `([a-z0-9_]+)` \| [a-z]+ \| [^|]* \| `(.*?)` \|", line)
        if m:
            write("config", f"key-{m.group(1)}", f"{m.group(1)}: {m.group(2)}\n")
    write(
        "config",
        "shared",
        "hb_port: 50003\nsecret: s3cret-long\ninterval: 5s\nservers: [hbd1, \"hbd2:50003\"]\n"
        "plugins:\n  cpu: {interval: 2s, timeout: 1s, isolate: true, options: {per_core: true}}\n"
        "  nagios:\n    options:\n      commands:\n        disk: {command: \"check_disk -w 10% -c 5%\"}\n"
        "thresholds:\n  \"fs.*.used_percent\": {warn: 85, crit: \"@0:5\", samples: 2}\n"
        "watchhosts: {db1: {grace: 5}, web1: ~}\ngrace: 3\njournal_fsync: always\n"
        "notify_reminder: off\nnotify_routes: [{hosts: \"web*\", channels: [email]}]\n",
    )


# --- threshold ranges ------------------------------------------------------------------


def ranges():
    forms = ["10", "10:", "~:10", "10:20", "@10:20", "@~:0", "-5:5", "1e3", "0.5:1.5", " @ 1 : 2 "]
    for i, f in enumerate(forms):
        write("threshold_range", f"range-{i}", f)
    write(
        "threshold_range",
        "rules",
        "cpu.usage_percent\t80\t95\t3\nfs.*.used_percent\t85\t@0:5\n*\t~:100\t\t1\n"
        "fs./var*.used_percent\t10:\t\t2\nnet.*.rx_bytes\t\t1e9",
    )


# --- Nagios output ---------------------------------------------------------------------


def nagios():
    plugins = "/usr/lib/nagios/plugins"
    checks = [
        "check_load -w 5,4,3 -c 10,8,6",
        "check_load -r -w 1,1,1 -c 2,2,2",
        "check_disk -w 10% -c 5% -p /",
        "check_disk -w 10% -c 5% -p / -p /tmp",
        "check_swap -w 20% -c 10%",
        "check_procs -w 250 -c 400",
        "check_procs -w 5 -c 10 -C sh",
        "check_users -w 5 -c 10",
        "check_dummy 1 warn-text",
        "check_dummy 3",
        "check_file_age -f /etc/hostname -w 10 -c 20",
        "check_tcp -H 127.0.0.1 -p 1",
        "check_disk -w 10% -c 5% -p /nonexistent",
    ]
    for c in checks:
        argv = shlex.split(c)
        path = os.path.join(plugins, argv[0])
        if not os.path.exists(path):
            continue
        r = subprocess.run([path] + argv[1:], capture_output=True, timeout=20)
        write("nagios_output", "real-" + re.sub(r"[^a-z0-9]+", "-", c.lower()).strip("-"), r.stdout)
    canned = {
        "multiline": "HTTP OK - 200\nline two\nline three | time=0.1s;1;2;0;10\nsize=123B;;;0",
        "quoted": "OK | 'disk /var'=12%;80;90;0;100 'it''s'=1 'unterminated=3",
        "units": "OK | a=1s b=2ms c=3us d=4% e=5B f=6KB g=7MB h=8TB i=9c j=U k=1.5e3 l=-2.5 m=,",
        "bad": "OK | =1 a= b=1;2;3;4;5;6 c=1,5 d=1.2.3 e=x f=1;;;; g=1;2;3;a",
        "crlf": "WARNING - x\r\nlong\r\n| a=1\r\n",
        "empty": "",
        "pipes": "OK | a=1 | b=2\nx | c=3",
    }
    for name, text in canned.items():
        write("nagios_output", name, text)


# --- journal segments (server/src/journal.rs) ------------------------------------------


def record(payload):
    return struct.pack("<II", len(payload), zlib.crc32(payload)) + payload


def event(i, kind="host_up", **extra):
    e = {"id": i, "ts_ms": 1_700_000_000_000 + i * 1000, "host": f"host{i % 3}", "kind": kind}
    e.update(extra)
    return json.dumps(e, separators=(",", ":")).encode()


def journal():
    evs = [
        event(1, "host_new", message="first heartbeat from 10.0.0.1"),
        event(2, "host_up", **{"from": "NEVER_SEEN", "to": "UP"}),
        event(3, "check_level", key="cpu.usage_percent", **{"from": "OK", "to": "WARNING"}),
        event(4, "host_down", **{"from": "UP", "to": "DOWN"}, message="no heartbeat for 25.0 s"),
        event(5, "system", message="journal: write failed"),
        event(6, "dns_update", **{"from": "10.0.0.1", "to": "10.0.0.2"}),
    ]
    good = b"".join(record(e) for e in evs)
    # Mode byte: bit 0 frames `\n`-separated payloads, bit 1 also opens a journal on them.
    write("journal_reader", "raw-good", b"\x00" + good)
    write("journal_reader", "raw-good-open", b"\x02" + good)
    write("journal_reader", "raw-torn", b"\x02" + good[:-7])
    write("journal_reader", "raw-zero-tail", b"\x00" + good + b"\x00" * 64)
    flipped = bytearray(good)
    flipped[len(good) // 2] ^= 0x20
    write("journal_reader", "raw-corrupt", b"\x02" + bytes(flipped))
    write("journal_reader", "framed", b"\x01" + b"\n".join(evs) + b"\n")
    write("journal_reader", "framed-open-tail", b"\x03" + b"\n".join(evs) + b"\n\x10\x00\x00\x00garbage")
    write("journal_reader", "framed-not-event", b"\x01" + b'{"not":"an event"}\n' + evs[0] + b"\n")


# --- REST bodies ------------------------------------------------------------------------


def rest():
    bodies = {
        "silence-duration": {"hosts": "web*", "duration": "2h", "reason": "kernel upgrade", "by": "ops"},
        "silence-until": {"hosts": "db1", "until_ms": 1_800_000_000_000, "reason": "move"},
        "silence-planned": {"hosts": "*", "from_ms": 1_750_000_000_000, "duration": "30m", "reason": "x"},
        "silence-both": {"hosts": "a", "duration": "1h", "until_ms": 5, "reason": "r"},
        "silence-bad-glob": {"hosts": "<b>", "duration": "1h", "reason": "r"},
        "silence-end-of-time": {"hosts": "*", "from_ms": 2**64 - 616, "duration": "1h", "reason": "x"},
        "test-email": {"channel": "email"},
        "test-empty": {},
    }
    for name, body in bodies.items():
        write("rest_bodies", name, json.dumps(body))


if __name__ == "__main__":
    heartbeats()
    configs()
    ranges()
    nagios()
    journal()
    rest()

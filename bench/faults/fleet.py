#!/usr/bin/env python3
"""Simulated hbc fleet for the fault-injection scripts (bench/faults/).

Sends signed heartbeats (docs/protocol.md, version 1) from N hosts, each at its own phase
of a fixed interval, over UDP to any address (hb-loadgen's blaster only sends to
loopback; the netem runs need a veth address) or by HTTP POST to /api/v1/heartbeat.
Optionally splits each heartbeat into several parts, sends a heartbeat's parts in
reverse order (--reorder), datagrams twice (--dup) or a heartbeat after the host's next one
(--late): reordering and duplicates as a network makes them, where netem is not available
(this machine's kernel has no sch_netem). Optionally flips each host's level every K heartbeats (so hbd makes host_level
events and notifications). Writes per-host counters as JSON at the end (--stats).

Standard library only. Bounded: stops after --duration seconds (at most 1 hour).
"""
import argparse
import hashlib
import hmac
import http.client
import json
import random
import signal
import socket
import struct
import sys
import time


def reading(key, value, level=0):
    k = key.encode()
    return (struct.pack(">B", len(k)) + k + b"\x00" + struct.pack(">d", value)
            + b"\x01%" + struct.pack(">B", level) + b"\x00\x00" + b"\x00")


def datagram(secret, host, instance, seq, sent_ms, interval_ms, level, part, parts, readings):
    name = host.encode()
    body = (b"HB\x01" + (b"\x01" if secret else b"\x00")
            + struct.pack(">QQQIBBBB", instance, seq, sent_ms, interval_ms, level, part, parts, len(name))
            + name + struct.pack(">H", len(readings)) + b"".join(readings))
    if secret:
        body += hmac.new(secret, body, hashlib.sha256).digest()
    return body


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--target", help="UDP host:port")
    ap.add_argument("--http", help="hbd API host:port: POST heartbeats instead of UDP")
    ap.add_argument("--hosts", type=int, default=100)
    ap.add_argument("--prefix", default="flt")
    ap.add_argument("--interval-ms", type=int, default=1000)
    ap.add_argument("--duration", type=float, default=60)
    ap.add_argument("--secret", default="hb-faults-secret-0123456789")
    ap.add_argument("--parts", type=int, default=1)
    ap.add_argument("--flip-every", type=int, default=0, help="toggle level every K beats (0: never)")
    ap.add_argument("--bind", default=None, help="local address to send from")
    ap.add_argument("--reorder", type=float, default=0, help="probability a heartbeat's parts go in reverse order")
    ap.add_argument("--dup", type=float, default=0, help="probability a datagram is sent twice")
    ap.add_argument("--late", type=float, default=0, help="probability a heartbeat is held until after the host's next one")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--stats", help="write per-host counters (JSON) here")
    a = ap.parse_args()
    if a.duration > 3600:
        sys.exit("fleet.py: --duration is limited to 3600 s")
    secret = a.secret.encode() if a.secret else None
    names = [f"{a.prefix}-{i:05d}" for i in range(a.hosts)]
    seq = [0] * a.hosts
    sent = [0] * a.hosts
    acked = [0] * a.hosts
    # (seq, level) of each HTTP heartbeat that got 202, only the level-changing ones.
    acked_flips = {n: [] for n in names}
    levels = [0] * a.hosts
    instance = int(time.time() * 1000)
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    signal.signal(signal.SIGINT, lambda *_: stop.append(1))

    sock = conn = None
    if a.http:
        h, p = a.http.rsplit(":", 1)
        conn = http.client.HTTPConnection(h, int(p), timeout=5)
    else:
        h, p = a.target.rsplit(":", 1)
        dest = (h, int(p))
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        if a.bind:
            sock.bind((a.bind, 0))
    errors = http_errors = 0
    rnd = random.Random(a.seed)
    held = {}  # host index -> datagrams held back (--late)
    counts = {"reordered": 0, "duplicated": 0, "late": 0}
    step = a.interval_ms / 1000.0 / a.hosts
    t0 = time.monotonic()
    slot = 0
    late_max = 0.0
    while not stop:
        due = t0 + slot * step
        now = time.monotonic()
        if due - t0 >= a.duration:
            break
        if due > now:
            time.sleep(due - now)
        else:
            late_max = max(late_max, now - due)
        i = slot % a.hosts
        slot += 1
        seq[i] += 1
        flip = a.flip_every and seq[i] % a.flip_every == 0
        if flip:
            levels[i] = 0 if levels[i] else 2
        sent_ms = int(time.time() * 1000)
        per = max(1, 6 // a.parts)
        grams = []
        for part in range(a.parts):
            rs = [reading(f"sim.r{part}_{j}", float(seq[i] % 100), levels[i] if part == 0 and j == 0 else 0)
                  for j in range(per)]
            grams.append(datagram(secret, names[i], instance, seq[i], sent_ms, a.interval_ms, levels[i],
                                  part, a.parts, rs))
        if a.parts > 1 and rnd.random() < a.reorder:
            grams.reverse()
            counts["reordered"] += 1
        out_now = []
        if a.late and i not in held and rnd.random() < a.late:
            held[i] = grams
            counts["late"] += 1
        else:
            out_now = grams + held.pop(i, [])
        for d in out_now:
            copies = 2 if a.dup and rnd.random() < a.dup else 1
            counts["duplicated"] += copies - 1
            for _ in range(copies):
                if conn is not None:
                    try:
                        conn.request("POST", "/api/v1/heartbeat", body=d,
                                     headers={"Content-Type": "application/octet-stream"})
                        r = conn.getresponse()
                        r.read()
                        if r.status == 202:
                            acked[i] += 1
                            if flip and d is grams[0]:
                                acked_flips[names[i]].append([seq[i], levels[i]])
                        else:
                            http_errors += 1
                    except (OSError, http.client.HTTPException):
                        errors += 1
                        conn.close()
                        conn = http.client.HTTPConnection(h, int(p), timeout=5)
                else:
                    try:
                        sock.sendto(d, dest)
                    except OSError:
                        errors += 1
        sent[i] += 1
    out = {
        "hosts": a.hosts, "instance": instance, "interval_ms": a.interval_ms,
        "heartbeats": sum(sent), "errors": errors, "http_errors": http_errors,
        "acked": sum(acked), "late_max_s": round(late_max, 3), **counts,
        "sent": dict(zip(names, sent)),
        "acked_flips": {k: v for k, v in acked_flips.items() if v},
    }
    if a.stats:
        with open(a.stats, "w") as f:
            json.dump(out, f)
    print(f"fleet.py: {a.hosts} hosts, {sum(sent)} heartbeats ({a.parts} part(s) each), "
          f"send errors {errors}, http non-202 {http_errors}, acked {sum(acked)}, "
          f"worst lateness {late_max:.3f} s, {counts}", file=sys.stderr)


if __name__ == "__main__":
    main()

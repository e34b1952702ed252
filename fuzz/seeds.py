#!/usr/bin/env python3
"""Seed the fuzz corpora from the real HAProxy <-> agent captures (tests/data/captures).

Usage: python3 fuzz/seeds.py [CAPTURES_DIR]   (default: tests/data/captures)

Writes fuzz/corpus/<target>/seed-<sha1> files: `frame` gets every frame without its length
prefix; `hello` the HAPROXY-HELLO payloads (KV lists); `notify` and `request` the NOTIFY
payloads; `hdrs_bin` each `arg_hdrs` block; `hdrs_text` the same headers written as req.hdrs.
A tiny SPOP reader (varints, typed data) is enough here: the captures are well-formed.
"""
import hashlib
import os
import re
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
FRAME_RE = re.compile(r"^C(\d+) ([<>]) ([0-9a-f]+)$")


def varint(buf, i):
    b = buf[i]
    i += 1
    if b < 240:
        return b, i
    v, shift = b, 4
    while True:
        b = buf[i]
        i += 1
        v += b << shift
        shift += 7
        if b < 128:
            return v, i


def lstr(buf, i):
    n, i = varint(buf, i)
    return buf[i:i + n], i + n


def typed(buf, i):
    t = buf[i] & 0x0F
    i += 1
    if t in (0, 1):
        return None, i
    if t in (2, 3, 4, 5):
        return varint(buf, i)[0], varint(buf, i)[1]
    if t == 6:
        return buf[i:i + 4], i + 4
    if t == 7:
        return buf[i:i + 16], i + 16
    return lstr(buf, i)


def messages(payload):
    i, out = 0, []
    while i < len(payload):
        name, i = lstr(payload, i)
        nargs = payload[i]
        i += 1
        args = {}
        for _ in range(nargs):
            an, i = lstr(payload, i)
            av, i = typed(payload, i)
            args[an] = av
        out.append((name, args))
    return out


def hdrs_bin_to_text(block):
    i, lines = 0, []
    while i < len(block):
        n, i = lstr(block, i)
        v, i = lstr(block, i)
        if not n and not v:
            break
        lines.append(n + b": " + v + b"\r\n")
    return b"".join(lines) + b"\r\n"


def main():
    root = sys.argv[1] if len(sys.argv) > 1 else os.path.join(HERE, "..", "tests", "data", "captures")
    seeds = {t: set() for t in ("frame", "hello", "notify", "request", "hdrs_bin", "hdrs_text")}
    for dirpath, _, files in os.walk(root):
        for f in sorted(files):
            if not f.endswith(".spop"):
                continue
            for line in open(os.path.join(dirpath, f)):
                m = FRAME_RE.match(line.strip())
                if not m:
                    continue
                raw = bytes.fromhex(m.group(3))
                frame = raw[4:]
                seeds["frame"].add(frame)
                ftype = frame[0]
                _, i = varint(frame, 5)
                _, i = varint(frame, i)
                payload = frame[i:]
                if ftype == 1:
                    seeds["hello"].add(payload)
                elif ftype == 3 and payload:
                    seeds["notify"].add(payload)
                    seeds["request"].add(payload)
                    for _, args in messages(payload):
                        h = args.get(b"arg_hdrs")
                        if isinstance(h, bytes):
                            seeds["hdrs_bin"].add(h)
                            seeds["hdrs_text"].add(hdrs_bin_to_text(h))
    for target, items in seeds.items():
        d = os.path.join(HERE, "corpus", target)
        os.makedirs(d, exist_ok=True)
        for item in items:
            name = "seed-" + hashlib.sha1(item).hexdigest()[:16]
            with open(os.path.join(d, name), "wb") as out:
                out.write(item)
        print(f"{target}: {len(items)} seeds")


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
# Resident memory per idle HTTP/2 client connection of a ringside binary:
# starts it with one route and one shard, opens N connections that send
# the HTTP/2 preface and an empty SETTINGS frame and read the server's
# SETTINGS, then reads VmRSS before and after. (`loadtest compare`'s idle
# scenarios cover opaque and HTTP/1 connections only.)
# Usage: loadtest/scripts/idle-h2.py RINGSIDE_BIN [N]   (N: 2000)
import resource
import socket
import subprocess
import sys
import time

resource.setrlimit(resource.RLIMIT_NOFILE, (20000, 20000))
binary = sys.argv[1]
n = int(sys.argv[2]) if len(sys.argv) > 2 else 2000
origin = socket.socket(); origin.bind(("127.0.0.1", 0)); origin.listen(4096)
oport = origin.getsockname()[1]
p = subprocess.Popen([binary, "--route", f"127.0.0.1:19100=127.0.0.1:{oport}", "--shards", "1",
                      "--admin-addr", "127.0.0.1:19102"], stderr=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
def rss():
    for line in open(f"/proc/{p.pid}/status"):
        if line.startswith("VmRSS"): return int(line.split()[1])
for _ in range(200):
    try:
        socket.create_connection(("127.0.0.1", 19100)).close(); break
    except OSError: time.sleep(0.05)
time.sleep(0.5)
before = rss()
preface = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + b"\x00\x00\x00\x04\x00\x00\x00\x00\x00"
conns = []
for i in range(n):
    s = socket.create_connection(("127.0.0.1", 19100)); s.sendall(preface); conns.append(s)
for s in conns:
    s.settimeout(5); s.recv(100)   # the server's SETTINGS
time.sleep(1)
after = rss()
print(f"{binary}: {n} idle h2 connections, {(after-before)/n:.2f} KiB each (RSS {before} -> {after} KiB)")
for s in conns: s.close()
p.terminate(); p.wait()

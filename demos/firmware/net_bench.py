#!/usr/bin/env python3
"""Ping-pong against the firmware's TCP echo, for the cost figures.

net_bench.py PORT N...: for each N, one connection sends N messages of 64
bytes, one at a time, each waiting for its echo (every byte checked), then
closes cleanly. The firmware logs its busy time per connection; sizes.sh
takes the difference of two N to cancel the connection's own costs.
Bounded: 10 s per message, 120 s per connection.
"""

import socket
import sys
import time

HOST = '127.0.0.1'


def run(port, n):
    deadline = time.monotonic() + 120
    with socket.create_connection((HOST, port), timeout=10) as s:
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for i in range(n):
            msg = (b'%06d' % i) * 10 + b'\n' * 4  # 64 bytes
            s.sendall(msg)
            got = b''
            while len(got) < len(msg):
                if time.monotonic() > deadline:
                    raise SystemExit('net_bench: deadline, message %d' % i)
                chunk = s.recv(len(msg) - len(got))
                if not chunk:
                    raise SystemExit('net_bench: end of file at message %d' % i)
                got += chunk
            if got != msg:
                raise SystemExit('net_bench: message %d echoed as %r' % (i, got))
        s.shutdown(socket.SHUT_WR)
        if s.recv(1) != b'':
            raise SystemExit('net_bench: no end of file')
    time.sleep(0.2)


def wait_ready(port):
    deadline = time.monotonic() + 60
    while True:
        try:
            run(port, 1)
            return
        except (OSError, SystemExit):
            if time.monotonic() > deadline:
                raise SystemExit('net_bench: the server never answered')
            time.sleep(0.2)


def main():
    port = int(sys.argv[1])
    wait_ready(port)
    for n in sys.argv[2:]:
        run(port, int(n))
        print('net_bench: %s messages of 64 bytes echoed' % n, flush=True)


if __name__ == '__main__':
    main()

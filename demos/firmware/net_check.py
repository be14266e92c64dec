#!/usr/bin/env python3
"""Host-side checks of the firmware's TCP echo server (net-echo.sh PORT).

Run by ci.sh against a server already started on 127.0.0.1:PORT; every check
bounds its time (socket timeouts, a deadline per check) and the whole run
stops by itself. In order, each followed by a probe that the server still
serves a new client:

1. the seed's own client (demos/python/selectors_echo_client.py, unmodified)
   gets its messages back;
2. SOCKETS concurrent connections (the firmware's socket count), each
   streaming 64 KiB of a seeded PRNG (splitmix64: not periodic), every byte
   of every echo checked;
3. a client that resets its connection mid-stream (SO_LINGER 0);
4. a client that half-closes (shutdown(SHUT_WR)) after 64 KiB and reads the
   rest: all of it, then end of file;
5. a client that stalls without reading: its sending must block (the server
   stops reading it: back-pressure), a second client is served meanwhile,
   and when the first reads, every byte comes back;
6. one connection more than the firmware has sockets for: refused (reset or
   closed without an echo), never a crash; once one connection closes, a new
   one is served.

Usage: net_check.py PORT [--sockets N]
"""

import argparse
import os
import select
import socket
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SEED_CLIENT = os.path.join(HERE, '..', 'python', 'selectors_echo_client.py')
HOST = '127.0.0.1'
STREAM = 64 * 1024


def splitmix64(seed, n):
    """n bytes of splitmix64 from seed."""
    out = bytearray()
    state = seed & 0xFFFFFFFFFFFFFFFF
    mask = 0xFFFFFFFFFFFFFFFF
    while len(out) < n:
        state = (state + 0x9E3779B97F4A7C15) & mask
        z = state
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & mask
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & mask
        z ^= z >> 31
        out += z.to_bytes(8, 'little')
    return bytes(out[:n])


def log(msg):
    print('[net_check] ' + msg, flush=True)


def connect(port, timeout=10.0):
    s = socket.create_connection((HOST, port), timeout=timeout)
    s.settimeout(timeout)
    return s


def recv_exact(s, n, deadline):
    got = bytearray()
    while len(got) < n:
        s.settimeout(max(0.1, deadline - time.monotonic()))
        chunk = s.recv(min(65536, n - len(got)))
        if not chunk:
            raise AssertionError('end of file after %d of %d bytes' % (len(got), n))
        got += chunk
    return bytes(got)


def close_cleanly(s, what):
    """shutdown(SHUT_WR), then end of file from the server (it closed too:
    its socket is back in its pool once our ACK of its FIN arrives), then
    close. A kernel would not need the wait; a fixed pool of sockets does."""
    s.shutdown(socket.SHUT_WR)
    deadline = time.monotonic() + 10
    s.setblocking(True)
    while True:
        s.settimeout(max(0.1, deadline - time.monotonic()))
        if s.recv(65536) == b'':
            break
    s.close()
    time.sleep(0.05)


def first_difference(a, b):
    for i, (x, y) in enumerate(zip(a, b)):
        if x != y:
            return i
    return min(len(a), len(b))


def check_equal(what, got, want):
    if got != want:
        i = first_difference(got, want)
        raise AssertionError('%s: %d bytes back of %d, first difference at byte %d'
                             % (what, len(got), len(want), i))


def probe(port, what='probe'):
    """A new client is served: a message comes back, then end of file."""
    msg = ('%s %f' % (what, time.monotonic())).encode()
    with connect(port) as s:
        s.sendall(msg)
        got = recv_exact(s, len(msg), time.monotonic() + 10)
        check_equal(what, got, msg)
        s.shutdown(socket.SHUT_WR)
        s.settimeout(10)
        if s.recv(1) != b'':
            raise AssertionError('%s: no end of file after the echo' % what)
    time.sleep(0.05)


def wait_ready(port, limit=60.0):
    """Probes until the server answers (QEMU accepts connections before the
    guest listens: only an echo proves it is up)."""
    deadline = time.monotonic() + limit
    while True:
        try:
            probe(port, 'ready')
            return
        except (OSError, AssertionError) as e:
            if time.monotonic() > deadline:
                raise AssertionError('the server never answered: %s' % e)
            time.sleep(0.2)


def seed_client(port):
    r = subprocess.run([sys.executable, SEED_CLIENT, '--host', HOST, '--port', str(port)],
                       capture_output=True, text=True, timeout=60)
    print(r.stdout, end='')
    if r.returncode != 0:
        raise AssertionError('the seed client failed: %s' % r.stderr)
    received = ''
    for line in r.stdout.splitlines():
        line = line.strip()
        if line.startswith("received b'"):
            received += line[len("received b'"):-1]
    want = 'This is the message. It will be repeated.'
    if received != want:
        raise AssertionError('the seed client received %r, not %r' % (received, want))
    log("seed client: its messages came back: %r" % received)


def stream(s, data, deadline):
    """Sends data while reading the echo; returns what came back."""
    got = bytearray()
    sent = 0
    s.setblocking(False)
    while len(got) < len(data):
        if time.monotonic() > deadline:
            raise AssertionError('stream: %d of %d bytes back at the deadline'
                                 % (len(got), len(data)))
        want_write = [s] if sent < len(data) else []
        r, w, _ = select.select([s], want_write, [], 1.0)
        if w:
            try:
                sent += s.send(data[sent:sent + 16384])
            except BlockingIOError:
                pass
        if r:
            try:
                chunk = s.recv(65536)
            except BlockingIOError:
                continue
            if not chunk:
                raise AssertionError('stream: end of file after %d bytes' % len(got))
            got += chunk
    s.setblocking(True)
    return bytes(got)


def concurrent(port, n):
    """n connections, opened one by one (each echoes before the next: the
    server has accepted it and re-armed its listener), then n streams at
    once."""
    conns = []
    try:
        for i in range(n):
            s = connect(port, timeout=30)
            msg = b'hello %d' % i
            s.sendall(msg)
            check_equal('connection %d' % i, recv_exact(s, len(msg), time.monotonic() + 10), msg)
            conns.append(s)
        errors = []
        deadline = time.monotonic() + 120

        def run(i, s):
            try:
                data = splitmix64(0x5EED + i, STREAM)
                check_equal('connection %d' % i, stream(s, data, deadline), data)
            except Exception as e:  # reported below
                errors.append('connection %d: %s' % (i, e))

        threads = [threading.Thread(target=run, args=(i, s)) for i, s in enumerate(conns)]
        t0 = time.monotonic()
        for t in threads:
            t.start()
        for t in threads:
            t.join(130)
        if errors or any(t.is_alive() for t in threads):
            raise AssertionError('; '.join(errors) or 'a stream did not finish')
        log('%d concurrent connections, 64 KiB each, every byte checked (%.2f s)'
            % (n, time.monotonic() - t0))
        for i, s in enumerate(conns):
            close_cleanly(s, 'connection %d' % i)
        conns = []
    finally:
        for s in conns:
            s.close()


def reset_mid_stream(port):
    s = connect(port)
    data = splitmix64(0xDEAD, STREAM)
    s.sendall(data[:20000])
    got = recv_exact(s, 4096, time.monotonic() + 10)
    check_equal('before the reset', got, data[:4096])
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b'\x01\x00\x00\x00\x00\x00\x00\x00')
    s.close()  # SO_LINGER 0: a reset
    log('reset mid-stream after 20000 bytes sent, 4096 read back')


def half_close(port):
    with connect(port) as s:
        data = splitmix64(0x4A1F, STREAM)
        t = threading.Thread(target=s.sendall, args=(data,))
        t.start()
        got = recv_exact(s, STREAM // 2, time.monotonic() + 60)
        t.join(60)
        s.shutdown(socket.SHUT_WR)
        rest = bytearray()
        deadline = time.monotonic() + 60
        while True:
            s.settimeout(max(0.1, deadline - time.monotonic()))
            chunk = s.recv(65536)
            if not chunk:
                break
            rest += chunk
        check_equal('half-closed', got + bytes(rest), data)
    log('half-close: 64 KiB sent, then SHUT_WR; all of it read back, then end of file')


def stall(port):
    """Sends without reading until sending blocks for 2 s (at most 16 MiB),
    checks that another client is served meanwhile, then reads all back."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    s.settimeout(10)
    s.connect((HOST, port))
    data = splitmix64(0x57A11, 16 * 1024 * 1024)
    sent = 0
    s.setblocking(False)
    blocked_since = None
    deadline = time.monotonic() + 120
    while sent < len(data):
        if time.monotonic() > deadline:
            raise AssertionError('stall: still sending at the deadline (%d bytes)' % sent)
        _, w, _ = select.select([], [s], [], 0.2)
        if w:
            try:
                n = s.send(data[sent:sent + 4096])
                sent += n
                blocked_since = None
                continue
            except BlockingIOError:
                pass
        if blocked_since is None:
            blocked_since = time.monotonic()
        elif time.monotonic() - blocked_since > 2.0:
            break
    if sent >= len(data):
        raise AssertionError('stall: 16 MiB sent without the server pushing back')
    log('stall: sending blocked after %d bytes, nothing read: back-pressure' % sent)
    probe(port, 'while another client stalls')
    log('stall: another client served meanwhile')
    s.setblocking(True)
    got = recv_exact(s, sent, time.monotonic() + 120)
    check_equal('stalled client', got, data[:sent])
    close_cleanly(s, 'stalled client')
    log('stall: all %d bytes came back, every byte checked' % sent)


def one_too_many(port, n):
    conns = []
    try:
        for i in range(n):
            s = connect(port, timeout=30)
            s.sendall(b'x%d' % i)
            recv_exact(s, 1 + len(str(i)), time.monotonic() + 10)
            conns.append(s)
        extra = connect(port)
        outcome = None
        try:
            extra.sendall(b'one too many')
            extra.settimeout(5)
            got = extra.recv(64)
            outcome = 'closed without an echo' if got == b'' else 'echoed %r' % got
        except ConnectionResetError:
            outcome = 'reset'
        except socket.timeout:
            outcome = 'no answer in 5 s'
        extra.close()
        if outcome not in ('reset', 'closed without an echo'):
            raise AssertionError('connection %d of %d sockets: %s, not refused'
                                 % (n + 1, n, outcome))
        log('connection %d with %d sockets: refused (%s)' % (n + 1, n, outcome))
        # The others are still served.
        for i, s in enumerate(conns):
            s.sendall(b'still %d' % i)
            check_equal('connection %d' % i, recv_exact(s, 6 + len(str(i)), time.monotonic() + 10),
                        b'still %d' % i)
        close_cleanly(conns.pop(0), 'connection 0')
        probe(port, 'after one closed')
        log('after one of the %d closed, a new client is served' % n)
        for i, s in enumerate(conns):
            close_cleanly(s, 'connection %d' % (i + 1))
        conns = []
    finally:
        for s in conns:
            s.close()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('port', type=int)
    ap.add_argument('--sockets', type=int, default=6)
    args = ap.parse_args()
    port = args.port
    start = time.monotonic()
    wait_ready(port)
    log('server up')
    checks = [
        ('seed client', lambda: seed_client(port)),
        ('concurrent streams', lambda: concurrent(port, args.sockets)),
        ('reset mid-stream', lambda: reset_mid_stream(port)),
        ('half-close', lambda: half_close(port)),
        ('stall', lambda: stall(port)),
        ('one too many', lambda: one_too_many(port, args.sockets)),
        ('seed client again', lambda: seed_client(port)),
    ]
    for name, check in checks:
        t0 = time.monotonic()
        check()
        probe(port, 'after ' + name)
        log('%s: passed, and the next client is served (%.2f s)' % (name, time.monotonic() - t0))
    log('all passed in %.1f s' % (time.monotonic() - start))


if __name__ == '__main__':
    try:
        main()
    except AssertionError as e:
        log('FAILED: %s' % e)
        sys.exit(1)

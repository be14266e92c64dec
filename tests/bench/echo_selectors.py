#!/usr/bin/env python3
"""Benchmark peer: the echo server on Python's selectors.DefaultSelector.

A correct multi-client version of the seed's selectors echo server, with
echod's connection logic (tests/examples/common/mod.rs): a 16 KiB buffer per
connection, read what fits, echo what the peer takes, READ/WRITE interest
that follows the buffer (backpressure), half-close, accept batches of 64.

    echo_selectors.py [--port P]    # prints "listening on ADDR", serves until killed
"""
import errno
import selectors
import socket
import sys

BUF = 16 * 1024
ACCEPT_BATCH = 64
MAX_CONNS = 1024
READ, WRITE = selectors.EVENT_READ, selectors.EVENT_WRITE


class Conn:
    __slots__ = ("sock", "buf", "view", "start", "end", "eof", "interest")

    def __init__(self, sock):
        self.sock = sock
        self.buf = bytearray(BUF)
        self.view = memoryview(self.buf)
        self.start = self.end = 0
        self.eof = False
        self.interest = READ


def main():
    port = 0
    if len(sys.argv) == 3 and sys.argv[1] == "--port":
        port = int(sys.argv[2])
    elif len(sys.argv) != 1:
        sys.exit("usage: echo_selectors.py [--port P]")
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", port))
    listener.listen(1024)
    listener.setblocking(False)
    print("listening on %s:%d" % listener.getsockname(), flush=True)
    sel = selectors.DefaultSelector()
    sel.register(listener, READ, None)
    conns = 0

    def close(c):
        nonlocal conns
        sel.unregister(c.sock)
        c.sock.close()
        conns -= 1

    def serve(c, mask):
        if mask & READ and not c.eof:
            while True:
                if c.end == BUF:
                    if c.start == 0:
                        break  # full: backpressure
                    c.buf[: c.end - c.start] = c.buf[c.start : c.end]
                    c.end -= c.start
                    c.start = 0
                try:
                    n = c.sock.recv_into(c.view[c.end :])
                except BlockingIOError:
                    break
                except InterruptedError:
                    continue
                except OSError:
                    return close(c)
                if n == 0:
                    c.eof = True
                    break
                c.end += n
        while c.start < c.end:
            try:
                c.start += c.sock.send(c.view[c.start : c.end])
            except BlockingIOError:
                break
            except InterruptedError:
                continue
            except OSError:
                return close(c)
        if c.start == c.end:
            c.start = c.end = 0
        if c.eof and c.end == 0:
            return close(c)
        want = 0
        if not c.eof and (c.end < BUF or c.start > 0):
            want |= READ
        if c.start < c.end:
            want |= WRITE
        if want != c.interest:
            sel.modify(c.sock, want, c)
            c.interest = want

    while True:
        for key, mask in sel.select():
            c = key.data
            if c is None:
                for _ in range(ACCEPT_BATCH):
                    if conns >= MAX_CONNS:
                        break
                    try:
                        sock, _ = listener.accept()
                    except (BlockingIOError, InterruptedError, ConnectionAbortedError):
                        break
                    except OSError as e:
                        if e.errno in (errno.EMFILE, errno.ENFILE):
                            break
                        raise
                    sock.setblocking(False)
                    conns += 1
                    sel.register(sock, READ, Conn(sock))
            else:
                serve(c, mask)


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        pass

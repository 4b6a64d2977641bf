"""A wide-area link in userspace: a TCP relay with a fixed delay each way.

This machine's kernel has no netem, so `bench/run --latency MS` puts this
relay between the workstation and every lab host. Each route listens on a
loopback alias (all of 127.0.0.0/8 is local on Linux, no setup needed) and
forwards to one lab host's port:

    relay.py --delay MS --route 127.77.0.1:22=198.18.1.11:22 \\
                        --route 127.77.0.1:2376=198.18.1.11:2376 ...
    relay.py --self-test

It prints one line, `ready N`, on stdout once every route listens, then
nothing more there (errors and a last count go to stderr). Stop it with
SIGTERM or SIGINT, sent to its pid.

What it models, per connection and per direction:

  - a fixed one-way delay: each chunk read from one side is written to the
    other side MS ms after it was read, in order. Chunks are pipelined in a
    timestamped queue, only delayed: throughput is not cut to one chunk per
    delay (a 10 MB transfer takes about one round trip longer than on the
    LAN, not 160 delays);
  - half-close: an end of stream (FIN) read from one side is passed on to
    the other MS ms later, after the data before it; when both directions
    have ended, both sockets are closed;
  - a close: when one side goes away (a reset, or a write to it fails),
    what it sent still arrives MS ms later, then the other side is closed;
  - the TCP handshake (unless --no-handshake): a client's first bytes leave
    the relay 2 × MS after it connected (its SYN and the SYN-ACK), and the
    connection to the host is opened 3 × MS after (the handshake's ACK
    reaching it), so a fresh connection's first answer comes 2 round trips
    after the connect, as over a real link. Because the client's own
    connect() returns at once, a host that refuses or does not answer shows
    as a connection closed (reset) after 3 × MS, not as "refused".

What it does not model: any bandwidth limit, loss, jitter or reordering;
TCP's own behaviour over the long path (slow start, window limits, the
retransmissions after a loss): each leg is loopback or the lab's bridge,
and the relay buffers up to 8 MiB per direction before it stops reading;
the TCP window of the long path is not emulated. Only TCP, and only the
routes given.

Standard library only (asyncio protocols, one timer per direction, reads
of up to 256 KiB, writes of everything due at once), so it carries
hundreds of connections on one core.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import re
import signal
import socket
import sys
import time

# Bytes queued in one direction before the relay stops reading the sender
# (it resumes below LOW): the link's buffer, bounded.
HIGH = 8 << 20
LOW = 4 << 20
# A chunk whose time is this close is written now (timers fire up to a
# clock tick early).
EARLY = 0.0005

EOF = "EOF"
CLOSE = "CLOSE"


def alias(index: int) -> str:
    """The loopback address that stands for the lab host at `index`
    (0-based): 127.77.0.1, ... 127.77.0.250, 127.77.1.1, ..."""
    if not 0 <= index < 250 * 250:
        raise ValueError(f"no alias for host {index}")
    return f"127.77.{index // 250}.{index % 250 + 1}"


def host_pattern(host: str, port: int) -> str:
    """How known_hosts names `host` reached on `port`."""
    return host if port == 22 else f"[{host}]:{port}"


_BRACKETED = re.compile(r"^\[([^\]]+)\]:(\d+)$")


def rekey_known_hosts(text: str, routes: dict[tuple[str, int], tuple[str, int]]) -> tuple[str, int]:
    """known_hosts lines re-keyed to the relay's addresses. `routes` maps
    (lab address, port) to (alias, relay port). Host patterns are read as
    OpenSSH does: comma-separated, `ADDRESS` (port 22) or `[ADDRESS]:PORT`,
    after an optional @cert-authority / @revoked marker. A line keeps only
    the patterns that map (names, hashed entries and other hosts are left
    out); lines with none are dropped. Returns the text and the number of
    lines written."""
    out = []
    for line in text.splitlines():
        fields = line.split()
        if not fields or fields[0].startswith("#"):
            continue
        marker = []
        if fields[0].startswith("@"):
            marker, fields = fields[:1], fields[1:]
        if len(fields) < 3:
            continue
        mapped = []
        for pattern in fields[0].split(","):
            bracketed = _BRACKETED.match(pattern)
            key = (bracketed.group(1), int(bracketed.group(2))) if bracketed else (pattern, 22)
            if key in routes:
                new = host_pattern(*routes[key])
                if new not in mapped:
                    mapped.append(new)
        if mapped:
            out.append(" ".join(marker + [",".join(mapped)] + fields[1:]))
    return "".join(f"{line}\n" for line in out), len(out)


class Stats:
    def __init__(self) -> None:
        self.accepted = 0
        self.open = 0
        self.peak = 0
        self.failed = 0
        self.bytes = 0
        self.failures: dict[str, int] = collections.Counter()


class Pipe:
    """One direction of a connection: chunks read from `src` are written
    to `dst` `delay` seconds after they were read, in order."""

    __slots__ = ("link", "src", "dst", "queue", "queued", "timer", "dst_blocked", "paused", "ended")

    def __init__(self, link: Link) -> None:
        self.link = link
        self.src: asyncio.Transport | None = None
        self.dst: asyncio.Transport | None = None
        self.queue: collections.deque = collections.deque()  # (deadline, bytes | EOF | CLOSE)
        self.queued = 0
        self.timer: asyncio.TimerHandle | None = None
        self.dst_blocked = False
        self.paused = False
        self.ended = False

    def push(self, item) -> None:
        link = self.link
        self.queue.append((link.loop.time() + link.delay, item))
        if item.__class__ is bytes:
            self.queued += len(item)
            link.stats.bytes += len(item)
            if self.queued > HIGH:
                self.throttle()
        self.schedule()

    def schedule(self) -> None:
        if self.timer is None and self.queue and self.dst is not None and not self.link.closing:
            self.timer = self.link.loop.call_at(self.queue[0][0], self.flush)

    def flush(self) -> None:
        """Writes everything that is due, then waits for the next chunk."""
        self.timer = None
        link = self.link
        if self.dst is None or link.closing or self.dst.is_closing():
            return
        due = link.loop.time() + EARLY
        chunks = []
        queue = self.queue
        while queue and queue[0][0] <= due:
            item = queue.popleft()[1]
            if item.__class__ is bytes:
                chunks.append(item)
                self.queued -= len(item)
                continue
            if chunks:
                self.dst.writelines(chunks)
                chunks = []
            if item is EOF:
                self.ended = True
                if self.dst.can_write_eof() and not self.dst.is_closing():
                    try:
                        self.dst.write_eof()
                    except OSError:  # the receiver is gone (reset) already
                        link.close()
                        return
                if link.both_ended():
                    link.close()
                    return
            else:  # CLOSE: the sender went away; what it sent has gone
                link.close()
                return
        if chunks:
            self.dst.writelines(chunks)
        if self.paused:
            self.throttle()
        self.schedule()

    def throttle(self) -> None:
        """Stops reading the sender while the queue or the receiver's write
        buffer is full, and reads again once they have drained."""
        src = self.src
        if src is None or src.is_closing():
            return
        hold = self.link.holding and self is self.link.up
        if not self.paused and (hold or self.dst_blocked or self.queued > HIGH):
            src.pause_reading()
            self.paused = True
        elif self.paused and not hold and not self.dst_blocked and self.queued < LOW:
            src.resume_reading()
            self.paused = False

    def drop(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        self.queue.clear()
        self.queued = 0


class Side(asyncio.Protocol):
    """One socket of a connection: it feeds `inbound`, `outbound` writes
    to it."""

    def __init__(self, link: Link, inbound: Pipe, outbound: Pipe) -> None:
        self.link = link
        self.inbound = inbound
        self.outbound = outbound
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport) -> None:
        self.transport = transport
        transport.set_write_buffer_limits(high=1 << 20)
        self.inbound.src = transport
        self.outbound.dst = transport
        if self is self.link.client:
            self.link.accepted(transport)
        self.outbound.schedule()

    def data_received(self, data: bytes) -> None:
        self.inbound.push(data)

    def eof_received(self) -> bool:
        self.inbound.push(EOF)
        return True  # keep the socket open: the other direction goes on

    def pause_writing(self) -> None:
        self.outbound.dst_blocked = True
        self.outbound.throttle()

    def resume_writing(self) -> None:
        self.outbound.dst_blocked = False
        self.outbound.throttle()

    def connection_lost(self, exc) -> None:
        link = self.link
        if link.closing:
            return
        # This socket went away: nothing more can be written to it; what it
        # sent still arrives, then the other side is closed.
        self.outbound.drop()
        self.outbound.dst = None
        self.inbound.src = None
        self.inbound.push(CLOSE)


class Link:
    """One relayed connection: the client's socket and the host's."""

    def __init__(self, relay: Relay, target: tuple[str, int]) -> None:
        self.loop = relay.loop
        self.delay = relay.delay
        self.handshake = relay.handshake
        self.stats = relay.stats
        self.relay = relay
        self.target = target
        self.up = Pipe(self)  # client -> host
        self.down = Pipe(self)  # host -> client
        self.client = Side(self, self.up, self.down)
        self.server: Side | None = None
        self.closing = False
        self.holding = self.handshake and self.delay > 0

    def accepted(self, transport) -> None:
        self.stats.accepted += 1
        self.stats.open += 1
        self.stats.peak = max(self.stats.peak, self.stats.open)
        self.relay.links.add(self)
        if self.holding:
            # The client's bytes leave once its handshake would be done (one
            # round trip), the host sees the connection half a round trip later.
            self.up.throttle()
            self.loop.call_later(2 * self.delay, self.release)
            self.loop.call_later(3 * self.delay, self.connect)
        else:
            self.connect()

    def release(self) -> None:
        self.holding = False
        if not self.closing:
            self.up.throttle()

    def connect(self) -> None:
        if not self.closing:
            self.loop.create_task(self._connect())

    async def _connect(self) -> None:
        self.server = Side(self, self.down, self.up)
        try:
            await self.loop.create_connection(lambda: self.server, *self.target)
        except OSError as error:
            key = f"{self.target[0]}:{self.target[1]}"
            self.stats.failed += 1
            self.stats.failures[key] += 1
            if self.stats.failures[key] == 1:
                print(f"relay: connecting to {key}: {error}", file=sys.stderr, flush=True)
            self.abort()
            return
        if self.closing and self.server.transport is not None:
            self.server.transport.close()

    def both_ended(self) -> bool:
        return self.up.ended and self.down.ended

    def _end(self, how: str) -> None:
        if self.closing:
            return
        self.closing = True
        self.stats.open -= 1
        self.relay.links.discard(self)
        for pipe in (self.up, self.down):
            pipe.drop()
        for side in (self.client, self.server):
            if side is not None and side.transport is not None and not side.transport.is_closing():
                getattr(side.transport, how)()

    def close(self) -> None:
        """Both sockets closed once their write buffers have gone."""
        self._end("close")

    def abort(self) -> None:
        self._end("abort")


class Relay:
    def __init__(self, delay_ms: float, handshake: bool = True) -> None:
        self.delay = delay_ms / 1000
        self.handshake = handshake
        self.stats = Stats()
        self.links: set[Link] = set()
        self.servers: list[asyncio.AbstractServer] = []
        self.loop = asyncio.get_running_loop()

    async def listen(self, routes: list[tuple[str, int, str, int]]) -> None:
        for listen_host, listen_port, target_host, target_port in routes:
            target = (target_host, target_port)
            try:
                server = await self.loop.create_server(
                    lambda target=target: Link(self, target).client,
                    listen_host,
                    listen_port,
                    reuse_address=True,
                    backlog=1024,
                )
            except OSError as error:
                raise SystemExit(f"relay: cannot listen on {listen_host}:{listen_port}: {error}") from None
            self.servers.append(server)

    def shutdown(self) -> None:
        for server in self.servers:
            server.close()
        for link in list(self.links):
            link.abort()


def parse_route(text: str) -> tuple[str, int, str, int]:
    match = re.fullmatch(r"([0-9.]+):(\d+)=([0-9.]+):(\d+)", text)
    if not match:
        raise argparse.ArgumentTypeError(f"{text!r} is not LISTEN_ADDRESS:PORT=TARGET_ADDRESS:PORT")
    listen, lport, target, tport = match.groups()
    for address in (listen, target):
        socket.inet_aton(address)
    if not listen.startswith("127."):
        raise argparse.ArgumentTypeError(f"{listen}: the relay listens on loopback (127.0.0.0/8) only")
    return listen, int(lport), target, int(tport)


async def serve(delay_ms: float, routes: list[tuple[str, int, str, int]], handshake: bool) -> None:
    relay = Relay(delay_ms, handshake)
    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        relay.loop.add_signal_handler(signum, stop.set)
    await relay.listen(routes)
    print(f"ready {len(routes)}", flush=True)
    await stop.wait()
    relay.shutdown()
    s = relay.stats
    print(
        f"relay: {s.accepted} connections (at most {s.peak} at once), {s.bytes / 1e6:.1f} MB, "
        f"{s.failed} failed connects",
        file=sys.stderr,
        flush=True,
    )


# The self-test: an echo server on 127.0.0.1, the relay in front of it as
# a child process, and clients measuring what comes through.


def free_port(host: str) -> int:
    with socket.socket() as probe:
        probe.bind((host, 0))
        return probe.getsockname()[1]


async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Echoes until end of stream, then half-closes, then closes. `?` asks
    for the count of bytes received so far instead of an echo."""
    received = 0
    try:
        while data := await reader.read(1 << 16):
            received += len(data)
            writer.write(f"{received}\n".encode() if data == b"?" else data)
            await writer.drain()
        writer.write(f"eof after {received}\n".encode())
        writer.write_eof()
        await writer.drain()
    finally:
        writer.close()


async def self_test(delay_ms: float) -> int:
    host = "127.0.0.1"
    listen = alias(250 * 250 - 1)  # 127.77.249.250
    upstream = await asyncio.start_server(echo, host, 0, backlog=1024)
    port = upstream.sockets[0].getsockname()[1]
    relay_port = free_port(listen)
    child = await asyncio.create_subprocess_exec(
        sys.executable, __file__, "--delay", str(delay_ms), "--route", f"{listen}:{relay_port}={host}:{port}",
        stdout=asyncio.subprocess.PIPE,
    )
    rtt = 2 * delay_ms / 1000
    failures = []

    def check(what: str, seconds: float, low: float, high: float) -> None:
        ok = low <= seconds <= high
        print(f"{'ok  ' if ok else 'FAIL'} {what}: {seconds * 1000:.1f} ms (expected {low * 1000:.0f}–{high * 1000:.0f} ms)")
        if not ok:
            failures.append(what)

    try:
        line = await asyncio.wait_for(child.stdout.readline(), 10)
        if not line.startswith(b"ready"):
            print("FAIL the relay did not start")
            return 1
        print(f"relay on {listen}:{relay_port} -> {host}:{port}, {delay_ms:g} ms each way")

        # A fresh connection: the TCP handshake's round trip, then the
        # request's.
        started = time.perf_counter()
        reader, writer = await asyncio.open_connection(listen, relay_port)
        writer.write(b"x")
        assert await reader.readexactly(1) == b"x"
        check("first answer on a fresh connection (2 round trips)", time.perf_counter() - started, 2 * rtt - 0.005, 2 * rtt + 0.04)

        # One byte, one answer, on the open connection: one round trip.
        times = []
        for _ in range(5):
            started = time.perf_counter()
            writer.write(b"y")
            assert await reader.readexactly(1) == b"y"
            times.append(time.perf_counter() - started)
        check("one-byte request/answer (median of 5)", sorted(times)[2], rtt - 0.002, rtt + 0.03)

        # 10 MB there and back at once, order kept: about one round trip
        # more than the copy itself, not one chunk per delay.
        payload = bytes(range(256)) * (10 * 1024 * 1024 // 256)
        started = time.perf_counter()

        async def send() -> None:
            writer.write(payload)
            await writer.drain()

        sender = asyncio.create_task(send())
        back = await reader.readexactly(len(payload))
        await sender
        seconds = time.perf_counter() - started
        if back != payload:
            failures.append("10 MB echo: the bytes came back changed or out of order")
            print("FAIL 10 MB echo: bytes changed or out of order")
        check(f"10 MB echoed ({len(payload) / seconds / 1e6:.0f} MB/s each way)", seconds, rtt, rtt + 1.5)

        # Half-close: the client shuts its write side; the server sees the
        # end of stream and still answers, then closes; the client reads
        # the answer and the end.
        started = time.perf_counter()
        writer.write(b"?")
        writer.write_eof()
        rest = await asyncio.wait_for(reader.read(), 5)
        seconds = time.perf_counter() - started
        expected = f"{len(payload) + 7}\neof after {len(payload) + 7}\n".encode()
        if rest != expected:
            failures.append("half-close")
            print(f"FAIL half-close: got {rest!r}, expected {expected!r}")
        check("half-close: answer and end of stream after the client's EOF", seconds, rtt - 0.002, rtt + 0.03)
        writer.close()

        # Many connections at once are delayed side by side, not in turn.
        count = 300

        async def one() -> float:
            r, w = await asyncio.open_connection(listen, relay_port)
            w.write(b"a")
            await r.readexactly(1)
            t0 = time.perf_counter()
            w.write(b"b")
            await r.readexactly(1)
            seconds = time.perf_counter() - t0
            w.close()
            return seconds

        started = time.perf_counter()
        times = await asyncio.gather(*(one() for _ in range(count)))
        total = time.perf_counter() - started
        check(f"{count} connections at once: slowest request/answer", max(times), rtt - 0.002, rtt + 0.1)
        check(f"{count} connections at once: all done (connect and 2 exchanges each)", total, 3 * rtt - 0.005, 3 * rtt + 0.5)

        # A refused target: the client's connection is cut.
        closed_port = free_port(host)
        refused_port = free_port(listen)
        other = await asyncio.create_subprocess_exec(
            sys.executable, __file__, "--delay", str(delay_ms), "--route", f"{listen}:{refused_port}={host}:{closed_port}",
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL,
        )
        await other.stdout.readline()
        r, w = await asyncio.open_connection(listen, refused_port)
        w.write(b"z")
        try:
            got = await asyncio.wait_for(r.read(), 5)
        except ConnectionResetError:
            got = b""
        if got:
            failures.append("refused target")
        print(f"{'ok  ' if not got else 'FAIL'} a refused target cuts the client's connection")
        w.close()
        other.send_signal(signal.SIGTERM)
        await other.wait()
    finally:
        if child.returncode is None:
            child.send_signal(signal.SIGTERM)
        code = await child.wait()
        upstream.close()
    if code != 0:
        failures.append(f"the relay exited {code}")
    print("self-test:", "passed" if not failures else f"FAILED ({', '.join(failures)})")
    return 0 if not failures else 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--delay", type=float, metavar="MS", help="one-way delay in milliseconds (each direction)")
    parser.add_argument("--route", type=parse_route, action="append", default=[], metavar="LISTEN:PORT=TARGET:PORT")
    parser.add_argument("--no-handshake", action="store_true", help="do not delay the TCP handshake")
    parser.add_argument("--self-test", action="store_true", help="check the relay on loopback (default delay 50 ms)")
    args = parser.parse_args()
    if args.self_test:
        return asyncio.run(self_test(50 if args.delay is None else args.delay))
    if args.delay is None or args.delay < 0 or not args.route:
        parser.error("--delay MS (0 or more) and at least one --route are needed")
    asyncio.run(serve(args.delay, args.route, not args.no_handshake))
    return 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""Rebuild one order book from mdrelay's bus, the way mdrelay::client does.

    pip install nats-py
    python3 examples/python/book.py okx btc-usdt                 # live top of book
    python3 examples/python/book.py okx btc-usdt --once --json   # the book once, as JSON

The algorithm (docs/consumers.md, "Joining a book"):

1. Fetch the last snapshot on market.<venue>.<symbol>.l2_snapshot (the
   stream capturing it keeps the last one per subject).
2. Replay the book's l2_orderbook and status subjects from a little before
   the snapshot was stored (two ordered consumers): the relay queues
   snapshots and deltas to different publishers, so a delta produced after
   the snapshot may be stored before it.
3. Skip the book events the snapshot contains; apply the ones after it,
   checking each continues the one before (venue update ids with the
   venue's sequence rule, or the relay's marks).
4. A hole, or a `gap` / `disconnected` status newer than the book, makes
   the book stale; the venue's next snapshot in the stream, or a newer
   l2_snapshot (then replayed again from just before it), recovers it.

Payloads are the relay's JSON form (payload_format = "json"); a protobuf
message is counted as undecodable (decoding it needs classes generated from
proto/market_data.proto).
"""

import argparse
import asyncio
import calendar
import json
import sys
import time
from datetime import datetime, timedelta, timezone
from decimal import Decimal, InvalidOperation

import nats
from nats.js import api
from nats.js.errors import NotFoundError

LOOKBACK = timedelta(seconds=1)


def token_of(symbol):
    """`btc-usdt` stays; `BTC/USDT:USDT` becomes `btc-usdt_usdt`."""
    if symbol and all(c in "abcdefghijklmnopqrstuvwxyz0123456789-_~" for c in symbol):
        return symbol
    out = []
    for b in symbol.encode():
        c = chr(b)
        if "A" <= c <= "Z":
            out.append(c.lower())
        elif c.isascii() and (c.isalnum() or c in "-_"):
            out.append(c)
        elif c == "/":
            out.append("-")
        elif c == ":":
            out.append("_")
        else:
            out.append("~%02X" % b)
    return "".join(out) or "~"


def nanos(text):
    """RFC 3339 UTC time (up to 9 fractional digits) -> nanoseconds."""
    main, _, frac = text.rstrip("Z").partition(".")
    secs = calendar.timegm(time.strptime(main, "%Y-%m-%dT%H:%M:%S"))
    return secs * 1_000_000_000 + int((frac + "000000000")[:9])


class Bad(Exception):
    """A message that is not a usable event."""


def decode(msg, want):
    ct = (msg.headers or {}).get("Content-Type", "application/json")
    if not ct.startswith("application/json"):
        raise Bad("content type %s (this example reads JSON)" % ct)
    try:
        ev = json.loads(msg.data)
        if ev["data_type"] != want:
            raise Bad("a %s event on %s" % (ev["data_type"], msg.subject))
        data = ev["data"]
        for side in ("bids", "asks"):
            for p, q in data.get(side, []):
                Decimal(p), Decimal(q)
        ev["receive_ns"] = nanos(ev["receive_time"])
        return ev
    except (ValueError, KeyError, TypeError, InvalidOperation) as e:
        raise Bad("%s: %r" % (msg.subject, e))


def position(data):
    if "relay_epoch" in data:
        return ("mark", (data["relay_epoch"], data["relay_seq"]))
    if "last_update_id" in data:
        return ("id", data["last_update_id"])
    return None


class Book:
    """One book and where it stands in its stream (mdrelay::client::BookTracker)."""

    def __init__(self, snapshot, receive_ns):
        self.depth = snapshot.get("depth")
        self.rule = snapshot.get("sequence")
        self.state = "resyncing"  # until the replay reaches the end
        self.applied = 0
        self.reset(snapshot, receive_ns)

    def reset(self, data, receive_ns):
        self.bids, self.asks = {}, {}
        self.apply_levels(data)
        self.pos = position(data)
        self.first = True
        self.base_ns = receive_ns
        if self.state != "resyncing":
            self.state = "synced"
        self.reason = None

    def apply_levels(self, data):
        for side, book in (("bids", self.bids), ("asks", self.asks)):
            for p, q in data[side]:
                price = Decimal(p)
                if Decimal(q) == 0:
                    book.pop(price, None)
                else:
                    book[price] = (p, q)
        if self.depth is not None:
            for book, best_first in ((self.bids, True), (self.asks, False)):
                for price in sorted(book, reverse=best_first)[self.depth:]:
                    del book[price]

    def contains(self, data):
        if self.pos is None:
            return False
        kind, have = self.pos
        if kind == "mark" and "relay_epoch" in data:
            return (data["relay_epoch"], data["relay_seq"]) <= have
        if kind == "id" and "last_update_id" in data:
            return data["last_update_id"] <= have
        return False

    def follows(self, data):
        """None when the delta continues the book, else why not."""
        if self.pos is None:
            return None
        kind, have = self.pos
        if kind == "mark":
            if "relay_epoch" not in data:
                return "a book event without a relay mark"
            epoch, seq = data["relay_epoch"], data["relay_seq"]
            if epoch == have[0] and seq == have[1] + 1:
                return None
            return "missing book events: have mark %s-%s, got %s-%s" % (have[0], have[1], epoch, seq)
        first, last, prev = (data.get(k) for k in ("first_update_id", "last_update_id", "prev_update_id"))
        if self.first:  # may overlap the snapshot, must not start after it
            late = (first is not None and first > have + 1) or (prev is not None and prev > have) or (
                self.rule == "step" and last is not None and last > have + 1
            )
            return "missing book events after update id %d" % have if late else None
        ok = {
            "contiguous": first is None or first == have + 1 or (last == have and first <= have),
            "prev_matches": prev is None or prev == have,
            "step": last is None or last == have + 1,
            "increasing": last is None or last > have,
        }.get(self.rule, True)
        return None if ok else "sequence gap after update id %d" % have

    def on_event(self, ev):
        data = ev["data"]
        if ev["data_type"] == "status":
            if data["state"] in ("gap", "disconnected") and self.state != "stale" and ev["receive_ns"] > self.base_ns:
                self.stale("relay reported `%s`: %s" % (data["state"], data.get("reason", "")))
            return
        if self.contains(data):
            return
        if data["kind"] == "snapshot":
            self.reset(data, ev["receive_ns"])
            return
        if self.state == "stale":
            return
        why = self.follows(data)
        if why:
            self.stale(why)
            return
        self.apply_levels(data)
        self.pos = position(data) or self.pos
        self.first = False
        self.applied += 1

    def stale(self, reason):
        self.state, self.reason = "stale", reason

    def as_json(self, venue, token, depth):
        bids = [list(self.bids[p]) for p in sorted(self.bids, reverse=True)[:depth]]
        asks = [list(self.asks[p]) for p in sorted(self.asks)[:depth]]
        out = {"venue": venue, "symbol": token, "state": self.state, "bids": bids, "asks": asks,
               "levels": {"bids": len(self.bids), "asks": len(self.asks)}}
        if self.pos and self.pos[0] == "id":
            out["last_update_id"] = self.pos[1]
        elif self.pos:
            out["relay_epoch"], out["relay_seq"] = self.pos[1]
        if self.bids and self.asks:
            out["spread"] = str(min(self.asks) - max(self.bids))
        return out


class Feed:
    """Join a book and follow it (mdrelay::client::BookFeed)."""

    def __init__(self, nc, venue, token):
        self.nc, self.js = nc, nc.jetstream()
        base = "market.%s.%s" % (venue, token)
        self.snapshot_subject = base + ".l2_snapshot"
        self.book_subject = base + ".l2_orderbook"
        self.status_subject = base + ".status"
        self.queue = asyncio.Queue(maxsize=10_000)  # bounded memory
        self.subs = []
        self.bad = 0
        self.joined = 0
        self.pending = {}

    async def stream_of(self, subject):
        try:
            return await self.js.find_stream_name_by_subject(subject)
        except NotFoundError:
            sys.exit("error: no JetStream stream captures %s" % subject)

    async def last_snapshot(self):
        try:
            msg = await self.js.get_last_msg(self.snapshot_stream, self.snapshot_subject)
        except NotFoundError:
            sys.exit("error: no snapshot on %s: the relay has published none for this book" % self.snapshot_subject)
        msg.headers = msg.headers or {}
        try:
            ev = decode(msg, "l2_snapshot")
        except Bad as e:
            sys.exit("error: the snapshot on %s cannot be read: %s" % (self.snapshot_subject, e))
        return msg, ev

    async def join(self):
        self.snapshot_stream = await self.stream_of(self.snapshot_subject)
        self.market_stream = await self.stream_of(self.book_subject)
        msg, ev = await self.last_snapshot()
        self.book = Book(ev["data"], ev["receive_ns"])
        await self.replay(msg)

    async def replay(self, snapshot_msg):
        for sub in self.subs:
            await sub.unsubscribe()
        self.subs, self.pending = [], {}
        # A fresh queue: what the previous replay delivered is not read.
        queue = self.queue = asyncio.Queue(maxsize=10_000)

        async def deliver(msg):
            await queue.put(msg)

        self.joined = snapshot_msg.seq
        start = snapshot_msg.time - LOOKBACK
        for subject in (self.book_subject, self.status_subject):
            cfg = api.ConsumerConfig(deliver_policy=api.DeliverPolicy.BY_START_TIME, opt_start_time=start)
            sub = await self.js.subscribe(subject, stream=self.market_stream, ordered_consumer=True, config=cfg,
                                          cb=deliver)
            info = await sub.consumer_info()
            # Messages to see before the replay is at the end of what is stored.
            self.pending[subject] = info.delivered.consumer_seq + info.num_pending
            self.subs.append(sub)

    def caught_up(self):
        return all(n <= 0 for n in self.pending.values()) and self.queue.empty()

    async def rejoin_if_newer(self):
        msg, ev = await self.last_snapshot()
        if msg.seq <= self.joined:
            return
        self.book = Book(ev["data"], ev["receive_ns"])
        await self.replay(msg)

    async def next(self, timeout):
        """Handle the next message (or, when stale, look for a newer snapshot)."""
        try:
            msg = await asyncio.wait_for(self.queue.get(), timeout)
        except asyncio.TimeoutError:
            if self.book.state == "stale":
                await self.rejoin_if_newer()
            return
        want = "status" if msg.subject == self.status_subject else "l2_orderbook"
        self.pending[msg.subject] = 0 if msg.metadata.num_pending == 0 else self.pending[msg.subject] - 1
        try:
            self.book.on_event(decode(msg, want))
        except Bad as e:
            self.bad += 1
            print("skipped a bad payload: %s" % e, file=sys.stderr)
        if self.book.state == "resyncing" and self.caught_up():
            self.book.state = "synced"
        if self.book.state == "stale":
            await self.rejoin_if_newer()


async def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("venue")
    ap.add_argument("symbol", help="subject token (btc-usdt) or canonical symbol (BTC/USDT)")
    ap.add_argument("--nats", default="nats://127.0.0.1:4222")
    ap.add_argument("--depth", type=int, default=10)
    ap.add_argument("--once", action="store_true", help="print the book once it is consistent, and exit")
    ap.add_argument("--json", action="store_true", help="with --once: as JSON")
    ap.add_argument("--timeout", type=float, default=30.0)
    args = ap.parse_args()
    token = token_of(args.symbol)
    try:
        nc = await nats.connect(args.nats, connect_timeout=5, max_reconnect_attempts=0)
    except Exception as e:  # noqa: BLE001 - any connection failure ends here
        sys.exit("error: cannot reach NATS at %s: %s" % (args.nats, e))
    feed = Feed(nc, args.venue, token)
    await feed.join()
    if feed.caught_up():
        feed.book.state = "synced"
    deadline = time.monotonic() + args.timeout
    while True:
        if args.once and feed.book.state == "synced":
            break
        if args.once and time.monotonic() > deadline:
            sys.exit("error: the book was not consistent within %.0f s (%s)" % (args.timeout, feed.book.state))
        await feed.next(timeout=0.5)
        if not args.once:
            b = feed.book.as_json(args.venue, token, 1)
            print("%s %s %s bid %s ask %s" % (datetime.now(timezone.utc).strftime("%H:%M:%S"), b["state"],
                                             b.get("last_update_id", b.get("relay_seq")), b["bids"][:1],
                                             b["asks"][:1]))
    out = feed.book.as_json(args.venue, token, args.depth)
    out["bad_payloads"] = feed.bad
    print(json.dumps(out) if args.json else out)
    await nc.close()


if __name__ == "__main__":
    asyncio.run(main())

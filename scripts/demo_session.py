#!/usr/bin/env python3
"""Build the offline demo's session (demo/okx-btc-usdt.jsonl) from the shared corpus.

One recorded OKX session (cryptofeed capture of 2022-05-13, the corpus's newest
OKX recording), BTC-USDT only: the `books` snapshot and its updates, the trades
and the tickers of the same ~11 s. The corpus keeps each channel in its own
file, so the frames are interleaved here by the exchange time (`ts`) of their
first data item; within a channel the recorded order is kept. Every frame is
copied byte for byte; nothing is rewritten. The subscribe acks of that session
go to demo/okx-acks.jsonl.

usage: scripts/demo_session.py   (MDRELAY_CORPUS overrides ../shared/corpus)
"""
import json
import os

HERE = os.path.dirname(os.path.abspath(__file__))
CORPUS = os.environ.get("MDRELAY_CORPUS", os.path.join(HERE, "..", "..", "shared", "corpus"))
OUT = os.path.join(HERE, "..", "demo")
INSTRUMENT = "BTC-USDT"
# (corpus file, first line, last line): the 2022-05-13 recording in each file
# (okx/PROTOCOL.md lists the line ranges of every recording).
SOURCES = [("capture-book.jsonl", 1, 290), ("trades.jsonl", 1, 74), ("ticker.jsonl", 1, 28)]
ACKS = ("control.jsonl", [15, 12, 18])  # trades, tickers, books acks for BTC-USDT


def lines(name):
    with open(os.path.join(CORPUS, "okx", name), encoding="utf-8") as f:
        return f.read().split("\n")


def main():
    picked = []
    for order, (name, first, last) in enumerate(SOURCES):
        text = lines(name)
        for n in range(first, last + 1):
            frame = json.loads(text[n - 1])
            if frame.get("arg", {}).get("instId") != INSTRUMENT:
                continue
            ts = min(int(d["ts"]) for d in frame["data"])
            picked.append((ts, order, n, name, text[n - 1]))
    picked.sort()
    os.makedirs(OUT, exist_ok=True)
    with open(os.path.join(OUT, "okx-btc-usdt.jsonl"), "w", encoding="utf-8") as f:
        for p in picked:
            f.write(p[4] + "\n")
    name, numbers = ACKS
    text = lines(name)
    with open(os.path.join(OUT, "okx-acks.jsonl"), "w", encoding="utf-8") as f:
        for n in numbers:
            f.write(text[n - 1] + "\n")
    spans = {}
    for _, _, n, name, _ in picked:
        spans.setdefault(name, []).append(n)
    for name, ns in spans.items():
        print(f"okx/{name}: {len(ns)} frames from lines {ns[0]}-{ns[-1]}")
    print(f"{len(picked)} frames, {(picked[-1][0] - picked[0][0]) / 1000:.1f} s of exchange time")


if __name__ == "__main__":
    main()

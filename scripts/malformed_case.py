#!/usr/bin/env python3
"""Write fixtures/<venue>/malformed.jsonl: a recorded frame, the same frame
truncated, the same frame with one field replaced, plain text, and the frame
again; and document it as derived (not recorded) in the fixture README.

usage: malformed_case.py <venue> <corpus-file> <line> <json-path> <bad-value-json>
  <json-path> is dot-separated keys/indices, e.g. data.p or 1.0.2
"""
import json
import os
import sys

CORPUS = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "corpus")


def main():
    venue, path, line, field, bad = sys.argv[1:6]
    folder = path.split("/")[0] if "/" in path else venue
    fname = path.split("/")[-1]
    good = open(os.path.join(CORPUS, folder, fname), encoding="utf-8").read().split("\n")[int(line) - 1]
    obj = json.loads(good)
    cur = obj
    keys = field.split(".")
    for k in keys[:-1]:
        cur = cur[int(k)] if isinstance(cur, list) else cur[k]
    last = keys[-1]
    if isinstance(cur, list):
        cur[int(last)] = json.loads(bad)
    else:
        cur[last] = json.loads(bad)
    lines = [good, good[:60], json.dumps(obj, separators=(",", ":")), "not json at all {", good]
    out = os.path.join(os.path.dirname(__file__), "..", "fixtures", venue)
    os.makedirs(out, exist_ok=True)
    open(os.path.join(out, "malformed.jsonl"), "w", encoding="utf-8").write("\n".join(lines) + "\n")
    with open(os.path.join(out, "README.md"), "a", encoding="utf-8") as r:
        r.write(f"- `malformed.jsonl` (5 frames): **derived, not recorded** — line 1 is `{folder}/{fname}` line {line} verbatim; "
                f"line 2 is that frame truncated after 60 bytes; line 3 is that frame with `{field}` replaced by `{bad}`; "
                f"line 4 is plain non-JSON text; line 5 repeats the good frame. It checks that bad frames are reported and "
                f"skipped and that mapping continues.\n")


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Where the operator's heap goes: sums the bytes live at the heap's peak by what holds them,
from either profiler's output.

heaptrack (fast enough for N = 10,000; any release-like build with symbols):

    cargo build --profile heap-profile -p email-operator
    printf '#!/bin/sh\\ncd /tmp/prof && exec heaptrack -o /tmp/prof/op %s "$@"\\n' \\
        "$PWD/target/heap-profile/email-operator" > /tmp/op.sh && chmod +x /tmp/op.sh
    mkdir -p /tmp/prof && testbed bench --identities 5000 --settings 1250 --skip-default-rate \\
        --crds crds --operator /tmp/op.sh
    heaptrack_print -f /tmp/prof/op.zst -F /tmp/prof/stacks.txt --flamegraph-cost-type peak
    python3 testbed/scripts/heap_breakdown.py /tmp/prof/stacks.txt

dhat (`--features heap-profile`; records every allocation's stack, slow past N = 2,000):

    cargo build --profile heap-profile --features heap-profile -p email-operator
    (cd /tmp/prof && testbed bench ... --operator "$OLDPWD/target/heap-profile/email-operator")
    python3 testbed/scripts/heap_breakdown.py /tmp/prof/dhat-heap.json [--at end]

A block is counted once, by the deepest frame of its stack (nearest the allocation) that one
of the categories names; a category may also require a frame elsewhere in the stack (which
controller's cache it is). heaptrack's Rust symbols are demangled with `c++filt -s rust`.
"""
import argparse
import collections
import json
import re
import subprocess

# (category, pattern of the deepest frame that names a holder, pattern the stack must also
# hold or None). Patterns match both profilers' frames: dhat's full paths with generics and
# heaptrack's demangled `function<> (file.rs)`. First match wins.
SI = r"sender_identity::(Error|reconcile)|DeserializeGuard<email_operator::crd::sender_identity"
ES = r"email_settings::(Error|reconcile)|apply_watcher_event<email_operator::crd::email_settings"
CATEGORIES = [
    ("SenderIdentity cache (whole objects)", r"apply_watcher_event", SI),
    ("EmailSettings cache (whole objects)", r"apply_watcher_event", ES),
    ("Secret, Namespace and SenderPolicy caches", r"apply_watcher_event|controller::secrets::|\(secrets\.rs\)", None),
    ("claim index (tenancy)", r"controller::tenancy::|\(tenancy\.rs\)", None),
    ("namespace indexes", r"controller::index::|\(index\.rs\)", None),
    ("watch triggers", r"controller::triggers::|\(triggers\.rs\)", None),
    ("bulk listing's dirty marks", r"mark_dirty", None),
    ("per-object memories (written statuses, checks, Event budgets)", r"controller::memory::|\(memory\.rs\)|wrote_status|event_allowed", None),
    ("bulk re-check", r"controller::recheck::|\((due|recheck)\.rs\)", None),
    ("controller queues (SenderIdentity)", r"kube_runtime::scheduler|\(scheduler\.rs\)", SI),
    ("controller queues (EmailSettings)", r"kube_runtime::scheduler|\(scheduler\.rs\)", ES),
    ("SES limiter and turns", r"ses::limiter|ses::turns|\((limiter|turns)\.rs\)", None),
    ("HTTP and TLS clients (Kubernetes, SES)", r"hyper|rustls|aws_smithy|h2::|tower|\((dispatch|conn|io|http1|client)\.rs\)", None),
    ("reconciles in flight", r"sender_identity::|email_settings::|\((apply|step|status|decide|dereference|publish|events)\.rs\)", None),
    ("watch streams (decoding)", r"kube_runtime::watcher|event_decode|serde_json|\(watcher\.rs\)", None),
    ("tokio runtime", r"tokio::", None),
]
COMPILED = [(name, re.compile(leaf), re.compile(ctx) if ctx else None) for name, leaf, ctx in CATEGORIES]


def category(stack):
    """`stack` root first."""
    joined = ";".join(stack)
    for frame in reversed(stack):
        for name, leaf, ctx in COMPILED:
            if leaf.search(frame) and (ctx is None or ctx.search(joined)):
                return name
    return "other"


def dhat_blocks(path, at):
    with open(path) as f:
        profile = json.load(f)
    frames = profile["ftbl"]
    field = "gb" if at == "peak" else "eb"
    for point in profile["pps"]:
        # dhat lists a stack leaf first.
        yield [frames[i] for i in reversed(point["fs"])], point[field]


def heaptrack_blocks(path):
    rows = []
    for line in open(path):
        stack, _, cost = line.rstrip("\n").rpartition(" ")
        if stack and cost.isdigit():
            rows.append((stack, int(cost)))
    symbols = sorted({s for stack, _ in rows for s in re.findall(r"_R[0-9A-Za-z_]+", stack)})
    demangled = subprocess.run(
        ["c++filt", "-s", "rust"], input="\n".join(symbols), capture_output=True, text=True
    ).stdout.split("\n")
    names = dict(zip(symbols, demangled))
    for stack, cost in rows:
        stack = re.sub(r"_R[0-9A-Za-z_]+", lambda m: names.get(m.group(0), m.group(0)), stack)
        yield stack.split(";"), cost


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("profile", help="dhat-heap.json, or heaptrack_print's -F stacks file")
    parser.add_argument("--at", choices=["peak", "end"], default="peak", help="dhat only")
    args = parser.parse_args()
    if args.profile.endswith(".json"):
        blocks = dhat_blocks(args.profile, args.at)
    else:
        blocks = heaptrack_blocks(args.profile)
    totals = collections.Counter()
    for stack, size in blocks:
        totals[category(stack)] += size
    total = sum(totals.values())
    print(f"heap live at {args.at}: {total / 2**20:.1f} MiB")
    for name, size in totals.most_common():
        print(f"{size / 2**20:7.2f} MiB {100 * size / max(total, 1):5.1f}%  {name}")


if __name__ == "__main__":
    main()

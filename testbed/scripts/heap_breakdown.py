#!/usr/bin/env python3
"""Where the operator's heap goes: reads the dhat-heap.json that an operator built with
`--features heap-profile` writes when it exits, and sums the bytes live at the heap's peak
(t-gmax; `--at end` for the bytes still live at exit) by what allocated them.

    cargo build --profile heap-profile --features heap-profile -p email-operator
    cargo build -p testbed
    (cd /tmp/prof && testbed bench --identities 2000 --settings 500 --skip-default-rate \
        --crds "$OLDPWD/crds" --operator "$OLDPWD/target/heap-profile/email-operator")
    python3 testbed/scripts/heap_breakdown.py /tmp/prof/dhat-heap.json

A block is counted once, in the first category (top to bottom) that a frame of its stack names.
"""
import argparse
import collections
import json

# (category, substrings of a frame that put a block in it), first match wins.
CATEGORIES = [
    ("SenderIdentity cache", ["apply_watcher_event<kube_core::error_boundary::DeserializeGuard<email_operator::crd::sender_identity"]),
    ("EmailSettings cache", ["apply_watcher_event<email_operator::crd::email_settings"]),
    ("Secret metadata cache", ["apply_watcher_event<kube_core::metadata::PartialObjectMeta<k8s_openapi::v1_37::api::core::v1::secret", "controller::secrets::"]),
    ("Namespace and SenderPolicy caches", ["apply_watcher_event<kube_core::metadata::PartialObjectMeta<k8s_openapi::v1_37::api::core::v1::namespace", "apply_watcher_event<email_operator::crd::sender_policy"]),
    ("claim index (tenancy)", ["controller::tenancy::"]),
    ("namespace indexes", ["controller::index::"]),
    ("watch triggers", ["controller::triggers::"]),
    ("per-object memories (written statuses, dirty marks, checks, Event budgets)", ["controller::memory::", "mark_dirty", "wrote_status", "event_allowed"]),
    ("bulk re-check", ["controller::recheck::"]),
    ("reconciles in flight", ["sender_identity::reconcile", "email_settings::reconcile"]),
    ("controller queues", ["kube_runtime::scheduler", "kube_runtime::controller::"]),
    ("watch streams (decoding)", ["kube_runtime::watcher", "event_decode", "serde_json"]),
    ("HTTP and TLS clients (Kubernetes, SES)", ["hyper", "rustls", "aws_smithy", "h2::", "tower"]),
    ("tokio runtime", ["tokio::"]),
]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("profile", help="dhat-heap.json")
    parser.add_argument("--at", choices=["peak", "end"], default="peak")
    args = parser.parse_args()
    with open(args.profile) as f:
        profile = json.load(f)
    frames = profile["ftbl"]
    field = "gb" if args.at == "peak" else "eb"
    totals = collections.Counter()
    for point in profile["pps"]:
        stack = [frames[i] for i in point["fs"]]
        category = next(
            (name for name, keys in CATEGORIES if any(k in f for f in stack for k in keys)),
            "other",
        )
        totals[category] += point[field]
    total = sum(totals.values())
    print(f"heap live at {args.at}: {total / 2**20:.1f} MiB")
    for name, size in totals.most_common():
        print(f"{size / 2**20:7.2f} MiB {100 * size / max(total, 1):5.1f}%  {name}")


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Counts the requests of an API server audit log (JSON lines, as the test plane writes with CREW_APISERVER_AUDIT)
by resource, verb, user and client (the user agent's program/component), most first. Standard library only.

    tests/tools/audit-summary.py /tmp/crew-bench-.../audit.log
"""
import collections
import json
import sys


def client(agent: str) -> str:
    # "kube-controller-manager/v1.37.2 (linux/amd64) kubernetes/abc/system:serviceaccount:kube-system:generic-garbage-collector"
    program = agent.split(" ", 1)[0].split("/", 1)[0]
    tail = agent.rsplit("/", 1)[-1] if "/" in agent else ""
    return f"{program} ({tail})" if tail and tail != agent and ":" in tail else program


def main(path: str) -> None:
    counts = collections.Counter()
    with open(path, encoding="utf-8") as log:
        for line in log:
            try:
                event = json.loads(line)
            except ValueError:
                continue
            ref = event.get("objectRef", {})
            key = (
                ref.get("resource", "?") + ("/" + ref["subresource"] if ref.get("subresource") else ""),
                event.get("verb", "?"),
                event.get("user", {}).get("username", "?"),
                client(event.get("userAgent", "?")),
            )
            counts[key] += 1
    print(f"{'count':>7}  resource  verb  user  client")
    for (resource, verb, user, agent), n in counts.most_common():
        print(f"{n:>7}  {resource}  {verb}  {user}  {agent}")


if __name__ == "__main__":
    main(sys.argv[1])

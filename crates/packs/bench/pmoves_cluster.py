#!/usr/bin/env python3
"""A snapshot for the PMOVES service matrix (../shared/corpus/pmoves/services.yaml).

The matrix names services, tiers, ports and peers but no cluster objects, so it cannot be a
snapshot as it is. This writes one Deployment per service into namespace `default` (labels
`app: <service>` and `tier: <tier>`, the labels `policyhub segment generate` selects on, and
the service's TCP ports), services named only as peers with tier `unknown` and no ports, and
kube-dns in kube-system. Standard library only: the matrix is one flow mapping per line.

  python3 pmoves_cluster.py ../shared/corpus/pmoves/services.yaml > cluster.yaml
"""
import re
import sys

LINE = re.compile(r"^  ([a-z0-9-]+):\s+\{(.*)\}\s*$")


def field(body, name):
    m = re.search(name + r": \[([^\]]*)\]", body)
    return [x.strip() for x in m.group(1).split(",") if x.strip()] if m else []


def main(path):
    services, peers = {}, set()
    for line in open(path, encoding="utf-8"):
        m = LINE.match(line)
        if not m:
            continue
        name, body = m.groups()
        tier = re.search(r"tier: ([a-z]+)", body).group(1)
        services[name] = (tier, [int(p) for p in field(body, "ports")])
        for key in ("from", "to"):
            peers.update(p for p in field(body, key) if p != "external")
    for p in sorted(peers - set(services)):
        services[p] = ("unknown", [])
    docs = ["apiVersion: v1\nkind: Namespace\nmetadata: {name: default}",
            "apiVersion: v1\nkind: Namespace\nmetadata: {name: kube-system}",
            "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: coredns, namespace: kube-system}\n"
            "spec:\n  selector: {matchLabels: {k8s-app: kube-dns}}\n  template:\n"
            "    metadata: {labels: {k8s-app: kube-dns}}\n    spec:\n      containers:\n"
            "      - {name: coredns, ports: [{containerPort: 53, protocol: UDP}, {containerPort: 53}]}"]
    for name, (tier, ports) in sorted(services.items()):
        port_list = ", ".join("{containerPort: %d}" % p for p in ports)
        docs.append(
            f"apiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: {name}, namespace: default}}\n"
            f"spec:\n  selector: {{matchLabels: {{app: {name}}}}}\n  template:\n"
            f"    metadata: {{labels: {{app: {name}, tier: {tier}}}}}\n    spec:\n      containers:\n"
            f"      - {{name: {name}, ports: [{port_list}]}}")
    print("\n---\n".join(docs))


if __name__ == "__main__":
    main(sys.argv[1])

#!/usr/bin/python3
"""Checks the hub chart's NetworkPolicy by evaluating it (called by scripts/checks.d/helm.sh).

    hub_connectivity.py POLICYHUB_BIN NEIGHBOURS RENDER_DIR RENDERING...

Runs `policyhub connectivity -o json` over each rendering of the hub chart (or of the
umbrella) together with NEIGHBOURS (deploy/hub/tests/neighbours.yaml: a collector, the
ingress controller, Prometheus, the cluster DNS, an external PostgreSQL stand-in and
unrelated pods) and asserts what the hub may do, from both ends:

- the collectors (the fixture's and the release's own DaemonSet), the ingress controller
  and Prometheus reach the hub on TCP 8080 and nothing else; every other peer, external
  addresses included, reaches the hub on nothing;
- the hub reaches PostgreSQL (the bundled StatefulSet, or the fixture's db/postgres) on
  TCP 5432 and the cluster DNS on TCP and UDP 53, and nothing else — except that without
  `networkPolicy.databaseTo` an external database may be any address, so every peer may
  then get TCP 5432 and no more;
- the bundled PostgreSQL accepts the hub on TCP 5432 and nobody else.
"""

import json
import os
import subprocess
import sys

import yaml

HUB_PORT = {("TCP", 8080)}
DNS = ("kube-system", "coredns")
DNS_PORTS = {("TCP", 53), ("UDP", 53)}
DATABASE_PORT = {("TCP", 5432)}
EXTERNAL_DB = ("db", "postgres")
CLIENTS = {("edge", "collector-edge"), ("ingress-nginx", "ingress-controller"), ("monitoring", "prometheus")}
# Renderings whose database may be any address on 5432 (no networkPolicy.databaseTo).
ANY_DATABASE = {"url-ingress-tls.yaml", "migrate-job.yaml", "readme-production.yaml", "hub-only.yaml"}


def ports(text):
    """`policyhub connectivity`'s port sets ("TCP 53,5432,UDP 53", "TCP 1-79", "All
    Connections", "No Connections") as a set of (protocol, port)."""
    if text == "All Connections":
        return {(proto, port) for proto in ("TCP", "UDP", "SCTP") for port in range(1, 65536)}
    out, proto = set(), None
    for item in text.split(",") if text != "No Connections" else []:
        if " " in item:
            proto, item = item.split(" ", 1)
        lo, _, hi = item.partition("-")
        out |= {(proto, port) for port in range(int(lo), int(hi or lo) + 1)}
    return out


def peer(p):
    return (p["namespace"], p["name"]) if isinstance(p, dict) else p


def workloads(path, component):
    """(namespace, name) of the workloads of `component` (hub, postgresql) or the collector."""
    out = set()
    with open(path, encoding="utf-8") as f:
        for d in yaml.safe_load_all(f):
            if not d or d.get("kind") not in ("Deployment", "StatefulSet", "DaemonSet"):
                continue
            labels = d["metadata"].get("labels", {})
            if labels.get("app.kubernetes.io/component") == component:
                out.add((d["metadata"]["namespace"], d["metadata"]["name"]))
    return out


def check_rendering(binary, neighbours, path):
    name = os.path.basename(path)
    problems = []
    run = subprocess.run(
        [binary, "connectivity", "-f", neighbours, path, "-o", "json", "--all"],
        capture_output=True,
        text=True,
        check=False,
    )
    if run.returncode != 0:
        return [f"{name}: policyhub connectivity failed: {run.stderr.strip()}"]
    allowed = {}
    peers = set()
    for c in json.loads(run.stdout):
        src, dst = peer(c["src"]), peer(c["dst"])
        peers |= {src, dst}
        allowed[(src, dst)] = c["ports"]
    # `{ingress-controller}` is policyhub's modelled controller (a pod without labels in its
    # own namespace, only ever a source), not the fixture's ingress-nginx pod checked below.
    peers.discard("{ingress-controller}")
    hubs = workloads(path, "hub")
    if len(hubs) != 1:
        return [f"{name}: expected one hub Deployment, found {sorted(hubs)}"]
    (hub,) = hubs
    bundled = workloads(path, "postgresql")
    database = next(iter(bundled), EXTERNAL_DB)
    clients = CLIENTS | workloads(path, "collector")

    def expect(src, dst, want):
        got = allowed.get((src, dst), "No Connections")
        if ports(got) != want:
            shown = ",".join(f"{proto} {port}" for proto, port in sorted(want)) or "nothing"
            problems.append(f"{name}: {fmt(src)} -> {fmt(dst)}: allowed {got!r}, expected {shown}")

    # Without networkPolicy.databaseTo the database may be anywhere: 5432 to every peer.
    anywhere = DATABASE_PORT if name in ANY_DATABASE and not bundled else set()
    for p in sorted(peers - {hub}, key=str):
        expect(p, hub, HUB_PORT if p in clients else set())
        if p == database:
            expect(hub, p, DATABASE_PORT)
        elif p == DNS:
            expect(hub, p, DNS_PORTS | anywhere)
        else:
            expect(hub, p, anywhere)
        for db in bundled:
            if p != db:
                expect(p, db, set())
    return problems


def fmt(p):
    return "/".join(p) if isinstance(p, tuple) else p


def main():
    binary, neighbours, render_dir = sys.argv[1:4]
    problems = []
    for rendering in sys.argv[4:]:
        problems += check_rendering(binary, neighbours, os.path.join(render_dir, rendering))
    for p in problems:
        print(p, file=sys.stderr)
    if problems:
        print(f"hub NetworkPolicy: {len(problems)} problem(s)", file=sys.stderr)
        return 1
    print(f"hub NetworkPolicy: {len(sys.argv) - 4} renderings evaluated with policyhub connectivity")
    return 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/python3
"""Checks deploy/compose/compose.yaml (called by scripts/checks.d/compose.sh).

    compose_check.py structure COMPOSE DOCKERFILE
    compose_check.py replay COMPOSE POLICYHUB COLLECTOR DATABASE_URL WORKDIR FLOWS

`structure`: the services and their order (postgres healthy → seed completed → hub and
collector), build targets that exist in the Dockerfile, declared volumes, the hub's port
published on 127.0.0.1 only, the hardening of our own services (read-only root, every
capability dropped, no new privileges), and one database URL that matches the PostgreSQL
service's user, password and database.

`replay`: runs what compose runs, without containers: the seed's, the hub's and the
collector's commands and environment from the file, with only the addresses and paths
that containers provide rewritten (the database URL to DATABASE_URL, /var/lib/policyhub
to WORKDIR, the hub's address to a free local port, FLOWS flows instead of the default
200,000 to keep it quick). Then signs in as the demo user and asserts through the API that
the dashboard is populated (allowed, blocked and unprotected flows over the week), and that
a second seed keeps the data and leaves nothing to replay.
"""

import http.cookiejar
import json
import os
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request

import yaml

OWN = ("seed", "hub", "collector")
DEMO_LOGIN = {"email": "demo@policyhub.local", "password": "policyhub-demo"}
VOLUME_ROOT = "/var/lib/policyhub"
PROBLEMS = []


def check(cond, msg):
    if not cond:
        PROBLEMS.append(msg)
    return cond


def load(path):
    with open(path, encoding="utf-8") as f:
        return yaml.safe_load(f)


def targets(dockerfile):
    with open(dockerfile, encoding="utf-8") as f:
        return {line.split(" AS ")[1].strip() for line in f if line.startswith("FROM ") and " AS " in line}


def database_url(compose):
    return compose["services"]["hub"]["environment"]["POLICYHUB_DATABASE_URL"]


def structure(path, dockerfile):
    compose = load(path)
    services = compose.get("services", {})
    check(set(services) == {"postgres", *OWN}, f"services {sorted(services)} are not postgres, seed, hub, collector")
    order = {
        "seed": {"postgres": "service_healthy"},
        "hub": {"seed": "service_completed_successfully"},
        "collector": {"seed": "service_completed_successfully", "hub": "service_started"},
    }
    for name, deps in order.items():
        got = {k: v.get("condition") for k, v in services.get(name, {}).get("depends_on", {}).items()}
        check(got == deps, f"{name} depends on {got}, expected {deps}")
    check("healthcheck" in services.get("postgres", {}), "postgres has no healthcheck (seed waits for it)")
    stages = targets(dockerfile)
    root = os.path.dirname(os.path.abspath(path))
    declared = set(compose.get("volumes", {}))
    for name in OWN:
        svc = services.get(name, {})
        build = svc.get("build", {})
        check(build.get("target") in stages, f"{name}: build target {build.get('target')!r} is not a stage of {dockerfile}")
        context = os.path.normpath(os.path.join(root, build.get("context", ".")))
        check(os.path.exists(os.path.join(context, build.get("dockerfile", ""))), f"{name}: {build.get('dockerfile')} not found from its context")
        check(svc.get("read_only") is True, f"{name}: the root filesystem is not read-only")
        check(svc.get("cap_drop") == ["ALL"], f"{name}: capabilities are not all dropped")
        check("no-new-privileges:true" in svc.get("security_opt", []), f"{name}: no-new-privileges is not set")
    for name, svc in services.items():
        for v in svc.get("volumes", []):
            source = v.split(":")[0]
            check(source in declared, f"{name}: volume {source} is not declared")
    check(services.get("hub", {}).get("ports") == ["127.0.0.1:8080:8080"], "the hub is not published on 127.0.0.1:8080 only")
    check("ports" not in services.get("postgres", {}), "PostgreSQL is published outside the project's network")
    env = services.get("postgres", {}).get("environment", {})
    url = urllib.parse.urlsplit(database_url(compose))
    check(
        (url.username, url.password, url.hostname, url.port, url.path.lstrip("/"))
        == (env.get("POSTGRES_USER"), env.get("POSTGRES_PASSWORD"), "postgres", 5432, env.get("POSTGRES_DB")),
        "the hub's database URL does not match the postgres service",
    )
    seed_url = next((a.split("=", 1)[1] for a in services["seed"]["command"] if a.startswith("--database-url=")), None)
    check(seed_url == database_url(compose), "the seed and the hub use different databases")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rewrite(args, replacements):
    out = []
    for a in args:
        for old, new in replacements:
            a = a.replace(old, new)
        out.append(a)
    return out


def run(cmd, timeout):
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
    if p.returncode != 0:
        raise SystemExit(f"{' '.join(cmd[:2])} failed ({p.returncode}):\n{p.stdout[-2000:]}\n{p.stderr[-4000:]}")
    return p.stdout


def replay(path, policyhub, collector, url, workdir, flows):
    compose = load(path)
    services = compose["services"]
    port = free_port()
    paths = [(database_url(compose), url), (VOLUME_ROOT, workdir), ("/tmp/spool", os.path.join(workdir, "spool"))]
    seed = [policyhub] + rewrite(services["seed"]["command"], paths) + [f"--flows={flows}"]
    run(seed, 300)
    export = os.path.join(workdir, "demo")
    hub_env = dict(os.environ)
    hub_env.update({k: str(v) for k, v in services["hub"]["environment"].items()})
    hub_env.update({"POLICYHUB_DATABASE_URL": url, "POLICYHUB_LISTEN": f"127.0.0.1:{port}", "RUST_LOG": "warn"})
    with open(os.path.join(workdir, "hub.log"), "w", encoding="utf-8") as log:
        hub = subprocess.Popen([policyhub] + services["hub"]["command"], env=hub_env, stdout=log, stderr=log)
    try:
        collector_args = rewrite(services["collector"]["command"], paths + [("http://hub:8080", f"http://127.0.0.1:{port}")])
        run([collector] + collector_args + [f"--metrics-listen=127.0.0.1:{free_port()}"], 300)
        totals, hours = dashboard(port)
        check(totals.get("allowedCount", 0) > 0, f"no allowed flows on the dashboard: {totals}")
        check(totals.get("blockedCount", 0) > 0, f"no blocked flows on the dashboard: {totals}")
        check(totals.get("noPolicyCount", 0) > 0, f"no unprotected flows on the dashboard: {totals}")
        check(hours >= 150, f"only {hours} hours of the week have flows")
        run(seed, 300)
        check(os.path.getsize(os.path.join(export, "flows.jsonl")) == 0, "a second seed exported flows to replay again")
        print(
            f"compose replay: the dashboard shows {totals.get('allowedCount')} allowed, {totals.get('blockedCount')} blocked and "
            f"{totals.get('noPolicyCount')} unprotected flows over {hours} hours; a second seed keeps them"
        )
    finally:
        hub.terminate()
        hub.wait(timeout=30)


def dashboard(port):
    """Signs in as the demo user; the pmoves cluster's totals over the last week and the
    number of hours with flows."""
    base = f"http://127.0.0.1:{port}"
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))
    for _ in range(100):
        try:
            opener.open(f"{base}/health/ready", timeout=2)
            break
        except OSError:
            time.sleep(0.1)
    login = urllib.request.Request(
        f"{base}/api/auth/login", data=json.dumps(DEMO_LOGIN).encode(), headers={"Content-Type": "application/json"}
    )
    opener.open(login, timeout=10)
    clusters = json.load(opener.open(f"{base}/api/clusters", timeout=10))["clusters"]
    cluster = next(c for c in clusters if c["name"] == "pmoves")
    end = int(time.time())
    query = urllib.parse.urlencode({"clusterId": cluster["id"], "start": end - 7 * 86400, "end": end})
    summary = json.load(opener.open(f"{base}/api/validation/summary?{query}", timeout=10))
    hours = sum(1 for h in summary["timeline"] if h["allowedCount"] + h["blockedCount"] + h["noPolicyCount"] > 0)
    return summary["totals"], hours


def main():
    mode = sys.argv[1]
    if mode == "structure":
        structure(*sys.argv[2:4])
    else:
        replay(*sys.argv[2:7], int(sys.argv[7]))
    for p in PROBLEMS:
        print(f"compose: {p}", file=sys.stderr)
    return 1 if PROBLEMS else 0


if __name__ == "__main__":
    sys.exit(main())

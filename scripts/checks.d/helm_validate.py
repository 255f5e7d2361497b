#!/usr/bin/python3
"""Validates the renderings of one of the project's charts (called by scripts/checks.d/helm.sh).

    helm_validate.py CHART_DIR RENDER_DIR

CHART_DIR is deploy/collector/chart, deploy/hub/chart or the umbrella deploy/chart (told
apart by the name in Chart.yaml). RENDER_DIR holds one `helm template` output per variant,
named as in that chart's VARIANTS below. Every object is checked against the Kubernetes
client's model of its kind (fields and types), with the common labels and namespace; then
each chart's own rules: for the collector the DaemonSet's security context, capabilities,
mounts, env and probes and the exact RBAC rules; for the hub the Deployment's restricted
security context, probes, the database URL from a Secret, the migration step, the Service,
PodDisruptionBudget, Ingress, NetworkPolicy and the evaluation-only PostgreSQL; the
umbrella's renderings are split by `app.kubernetes.io/name` and each part checked by its
chart's rules. Every `.Values.x.y` a template references must exist in values.yaml (for
the umbrella: in each subchart's). Prints every problem and exits 1 when there is one.
Needs PyYAML and the Kubernetes client (python3-kubernetes) for its models (no cluster is
contacted).
"""

import os
import re
import sys

import yaml

PROBLEMS = []

EBPF_CAPS = {"BPF", "PERFMON", "NET_ADMIN", "SYS_RESOURCE"}
# Kinds and the Kubernetes Python client's model of each (python3-kubernetes): every field
# of a rendered object must exist in the model, with the right type. CRDs (ServiceMonitor)
# have no model and are checked by hand.
MODELS = {
    ("apps/v1", "DaemonSet"): "V1DaemonSet",
    ("apps/v1", "Deployment"): "V1Deployment",
    ("apps/v1", "StatefulSet"): "V1StatefulSet",
    ("batch/v1", "Job"): "V1Job",
    ("networking.k8s.io/v1", "Ingress"): "V1Ingress",
    ("networking.k8s.io/v1", "NetworkPolicy"): "V1NetworkPolicy",
    ("policy/v1", "PodDisruptionBudget"): "V1PodDisruptionBudget",
    ("v1", "ServiceAccount"): "V1ServiceAccount",
    ("v1", "Service"): "V1Service",
    ("v1", "Secret"): "V1Secret",
    ("rbac.authorization.k8s.io/v1", "ClusterRole"): "V1ClusterRole",
    ("rbac.authorization.k8s.io/v1", "ClusterRoleBinding"): "V1ClusterRoleBinding",
    ("monitoring.coreos.com/v1", "ServiceMonitor"): None,
}
RBAC = {
    ("", "namespaces"),
    ("", "pods"),
    ("networking.k8s.io", "networkpolicies"),
    ("cilium.io", "ciliumnetworkpolicies"),
    ("cilium.io", "ciliumclusterwidenetworkpolicies"),
    ("policy.networking.k8s.io", "adminnetworkpolicies"),
    ("policy.networking.k8s.io", "baselineadminnetworkpolicies"),
}
EBPF_MOUNTS = {"/sys/kernel/btf", "/sys/fs/cgroup", "/sys/kernel/tracing"}
NAMESPACE = "policyhub-system"
LABELS = (
    "app.kubernetes.io/name",
    "app.kubernetes.io/instance",
    "app.kubernetes.io/version",
    "app.kubernetes.io/managed-by",
    "helm.sh/chart",
)


def problem(where, msg):
    PROBLEMS.append(f"{where}: {msg}")


def check(cond, where, msg):
    if not cond:
        problem(where, msg)
    return cond


def load(path):
    with open(path, encoding="utf-8") as f:
        docs = [d for d in yaml.safe_load_all(f) if d is not None]
    return docs


def by_kind(docs):
    out = {}
    for d in docs:
        out.setdefault(d.get("kind"), []).append(d)
    return out


def one(kinds, kind, where):
    found = kinds.get(kind, [])
    check(len(found) == 1, where, f"expected one {kind}, found {len(found)}")
    return found[0] if found else {}


def env_of(container):
    return {e["name"]: e for e in container.get("env", [])}


def check_schema(value, typ, where, path):
    """`value` against the client model type `typ` (`V1PodSpec`, `list[V1Volume]`,
    `dict(str, str)`, `str`, `int`, `bool`, `object`): unknown fields and wrong types."""
    import kubernetes.client as models

    here = f"{where}: {path}"
    if typ.startswith("list["):
        if check(isinstance(value, list), here, f"expected a list, got {value!r}"):
            for i, v in enumerate(value):
                check_schema(v, typ[5:-1], where, f"{path}[{i}]")
    elif typ.startswith("dict("):
        inner = typ[typ.index(",") + 1 : -1].strip()
        if check(isinstance(value, dict), here, f"expected a map, got {value!r}"):
            for k, v in value.items():
                check_schema(v, inner, where, f"{path}.{k}")
    elif typ == "str":
        # Quantities (resources) are typed str in the client; the API also takes numbers.
        quantity = any(f".{seg}." in path for seg in ("limits", "requests"))
        ok = isinstance(value, str) or (quantity and isinstance(value, (int, float)))
        check(ok, here, f"expected a string, got {value!r}")
    elif typ == "int":
        check(isinstance(value, int) and not isinstance(value, bool), here, f"expected an integer, got {value!r}")
    elif typ == "bool":
        check(isinstance(value, bool), here, f"expected true/false, got {value!r}")
    elif typ in ("object", "datetime", "float"):
        pass
    else:
        model = getattr(models, typ)
        if not check(isinstance(value, dict), here, f"expected an object ({typ}), got {value!r}"):
            return
        fields = {j: py for py, j in model.attribute_map.items()}
        for k, v in value.items():
            if check(k in fields, here, f"unknown field {k!r} ({typ})"):
                check_schema(v, model.openapi_types[fields[k]], where, f"{path}.{k}")


def check_common(name, docs):
    """Every object: known kind, valid against its model, the common labels, the namespace."""
    for d in docs:
        meta = d.get("metadata", {})
        where = f"{name}: {d.get('kind')}/{meta.get('name')}"
        key = (d.get("apiVersion"), d.get("kind"))
        if check(key in MODELS, where, f"unexpected apiVersion/kind {key}") and MODELS[key]:
            check_schema(d, MODELS[key], where, "")
        check(d.get("apiVersion"), where, "no apiVersion")
        check(meta.get("name"), where, "no metadata.name")
        labels = meta.get("labels", {})
        for label in LABELS:
            check(label in labels, where, f"missing label {label}")
        if d.get("kind") not in ("ClusterRole", "ClusterRoleBinding"):
            check(meta.get("namespace") == NAMESPACE, where, f"namespace is not {NAMESPACE}")


def check_rbac(name, kinds, sa_name):
    role = one(kinds, "ClusterRole", name)
    where = f"{name}: ClusterRole"
    granted = set()
    for rule in role.get("rules", []):
        check(
            sorted(rule.get("verbs", [])) == ["get", "list", "watch"],
            where,
            f"verbs {rule.get('verbs')} are not exactly get, list, watch",
        )
        check(not rule.get("nonResourceURLs"), where, "nonResourceURLs granted")
        for group in rule.get("apiGroups", []):
            for res in rule.get("resources", []):
                granted.add((group, res))
    check(granted == RBAC, where, f"resources {sorted(granted ^ RBAC)} differ from the watched kinds")
    binding = one(kinds, "ClusterRoleBinding", name)
    where = f"{name}: ClusterRoleBinding"
    check(binding.get("roleRef", {}).get("name") == role.get("metadata", {}).get("name"), where, "roleRef is not the ClusterRole")
    subjects = binding.get("subjects", [])
    check(
        subjects == [{"kind": "ServiceAccount", "name": sa_name, "namespace": NAMESPACE}],
        where,
        f"subjects {subjects} are not the collector's ServiceAccount",
    )


def check_daemonset(name, ds, source, expect):
    where = f"{name}: DaemonSet"
    spec = ds.get("spec", {})
    pod = spec.get("template", {}).get("spec", {})
    selector = spec.get("selector", {}).get("matchLabels", {})
    pod_labels = spec.get("template", {}).get("metadata", {}).get("labels", {})
    check(selector and all(pod_labels.get(k) == v for k, v in selector.items()), where, "selector does not match the pod labels")
    check(not pod.get("hostNetwork") and not pod.get("hostPID"), where, "hostNetwork/hostPID must stay off")
    tolerations = pod.get("tolerations", [])
    check({"operator": "Exists"} in tolerations, where, "does not tolerate every taint (control plane included)")
    containers = pod.get("containers", [])
    if not check(len(containers) == 1, where, "expected one container"):
        return
    c = containers[0]
    env = env_of(c)
    node = env.get("NODE_NAME", {})
    check(
        node.get("valueFrom", {}).get("fieldRef", {}).get("fieldPath") == "spec.nodeName",
        where,
        "NODE_NAME does not come from spec.nodeName",
    )
    check(env.get("POLICYHUB_SOURCE", {}).get("value") == source, where, f"POLICYHUB_SOURCE is not {source}")
    for var in ("POLICYHUB_HUB_URL", "POLICYHUB_CLUSTER", "POLICYHUB_SPOOL_DIR", "POLICYHUB_METRICS_LISTEN"):
        check(env.get(var, {}).get("value"), where, f"{var} is not set")
    check("POLICYHUB_TOKEN" not in env, where, "the token must come from a file, not the environment")
    token_file = env.get("POLICYHUB_TOKEN_FILE", {}).get("value", "")
    mounts = {m["mountPath"]: m for m in c.get("volumeMounts", [])}
    volumes = {v["name"]: v for v in pod.get("volumes", [])}
    token_mount = mounts.get(os.path.dirname(token_file))
    if check(token_mount, where, "POLICYHUB_TOKEN_FILE is not in a mounted directory"):
        vol = volumes.get(token_mount["name"], {})
        check(vol.get("secret", {}).get("secretName") == expect["token_secret"], where, f"token volume is not the Secret {expect['token_secret']}")
        check(token_mount.get("readOnly"), where, "token mount not read-only")
    spool_dir = env.get("POLICYHUB_SPOOL_DIR", {}).get("value", "")
    spool = [m for p, m in mounts.items() if spool_dir.startswith(p.rstrip("/") + "/")]
    if check(spool, where, "the spool directory is not on a volume (the root filesystem is read-only)"):
        vol = volumes.get(spool[0]["name"], {})
        kind = "hostPath" if expect["spool_host"] else "emptyDir"
        check(kind in vol, where, f"spool volume is not a {kind}")

    args = c.get("args", [])
    for flag in ("--flush-interval=", "--spool-max=", "--drain=", "--log-format="):
        check(any(a.startswith(flag) for a in args), where, f"argument {flag} missing")

    check_port_probes(c, where, "metrics", 9464, "/healthz", "/readyz")
    check_limits(c, where, max_cores=1)

    sc = c.get("securityContext", {})
    check(sc.get("privileged") is False, where, "privileged is not false")
    check(sc.get("allowPrivilegeEscalation") is False, where, "allowPrivilegeEscalation is not false")
    check(sc.get("readOnlyRootFilesystem") is True, where, "readOnlyRootFilesystem is not true")
    caps = sc.get("capabilities", {})
    check(caps.get("drop") == ["ALL"], where, "capabilities do not drop ALL")
    added = set(caps.get("add") or [])
    want = EBPF_CAPS if source == "ebpf" else set()
    check(added == want, where, f"capabilities added {sorted(added)}, expected {sorted(want)}")

    ebpf_mounts = EBPF_MOUNTS if expect.get("tracefs", True) else EBPF_MOUNTS - {"/sys/kernel/tracing"}
    for path in EBPF_MOUNTS | {"/sys/fs/bpf"}:
        present = path in mounts
        wanted = source == "ebpf" and (path in ebpf_mounts or (path == "/sys/fs/bpf" and expect.get("bpffs")))
        check(present == bool(wanted), where, f"mount {path} {'missing' if wanted else 'unexpected'}")
        if present:
            m = mounts[path]
            check(m.get("readOnly") is True, where, f"{path} not mounted read-only")
            vol = volumes.get(m["name"], {})
            check(vol.get("hostPath", {}).get("path"), where, f"{path} is not a hostPath volume")
    if source == "hubble":
        address = env.get("POLICYHUB_HUBBLE_ADDRESS", {}).get("value", "")
        check(address, where, "POLICYHUB_HUBBLE_ADDRESS is not set")
        if address.startswith("unix://"):
            sock_dir = os.path.dirname(address[len("unix://"):])
            check(sock_dir in mounts and mounts[sock_dir].get("readOnly"), where, f"the Hubble socket directory {sock_dir} is not mounted read-only")
        for var in expect.get("tls_env", []):
            path = env.get(var, {}).get("value", "")
            m = mounts.get(os.path.dirname(path))
            check(m and "secret" in volumes.get(m["name"], {}), where, f"{var} ({path!r}) is not in a mounted Secret")
    # Every mount has its volume.
    for m in c.get("volumeMounts", []):
        check(m["name"] in volumes, where, f"mount {m['name']} has no volume")


def check_port_probes(c, where, port_name, port, live, ready):
    """Container `c` declares `port_name` = `port` and probes GET `live` and `ready` on it."""
    declared = next((p for p in c.get("ports", []) if p.get("name") == port_name), None)
    check(declared and declared.get("containerPort") == port, where, f"port {port_name} ({port}) missing")
    for probe, path in (("livenessProbe", live), ("readinessProbe", ready)):
        get = c.get(probe, {}).get("httpGet", {})
        check(
            get.get("path") == path and get.get("port") in (port_name, port),
            where,
            f"{probe} is not GET {path} on the {port_name} port",
        )


def check_limits(c, where, max_cores):
    limits = c.get("resources", {}).get("limits", {})
    check(0 < cpu_cores(limits.get("cpu")) <= max_cores, where, f"no CPU limit of at most {max_cores} cores")
    check(limits.get("memory"), where, "no memory limit")


def check_restricted(pod, c, where, claims=()):
    """The Pod Security "restricted" profile: non-root, no privilege escalation, every
    capability dropped, RuntimeDefault seccomp; plus a read-only root filesystem."""
    psc, sc = pod.get("securityContext", {}), c.get("securityContext", {})
    check(sc.get("runAsNonRoot") is True or psc.get("runAsNonRoot") is True, where, "runAsNonRoot is not true")
    uid = sc.get("runAsUser", psc.get("runAsUser"))
    check(isinstance(uid, int) and uid > 0, where, f"runAsUser {uid!r} is not a non-root uid")
    check(sc.get("allowPrivilegeEscalation") is False, where, "allowPrivilegeEscalation is not false")
    check(sc.get("readOnlyRootFilesystem") is True, where, "readOnlyRootFilesystem is not true")
    check(not sc.get("privileged"), where, "privileged")
    caps = sc.get("capabilities", {})
    check(caps.get("drop") == ["ALL"] and not caps.get("add"), where, "capabilities do not drop ALL (or add some)")
    seccomp = sc.get("seccompProfile", psc.get("seccompProfile", {}))
    check(seccomp.get("type") == "RuntimeDefault", where, "seccompProfile is not RuntimeDefault")
    check(not pod.get("hostNetwork") and not pod.get("hostPID") and not pod.get("hostIPC"), where, "host namespaces used")
    volumes = {v["name"]: v for v in pod.get("volumes", [])}
    check(not any("hostPath" in v for v in volumes.values()), where, "hostPath volume")
    for m in c.get("volumeMounts", []):
        check(m["name"] in volumes or m["name"] in claims, where, f"mount {m['name']} has no volume")


def cpu_cores(quantity):
    """A CPU quantity (`1`, `500m`, `0.5`) in cores; 0 when absent or unreadable."""
    q = str(quantity or "")
    try:
        return int(q[:-1]) / 1000 if q.endswith("m") else float(q)
    except ValueError:
        return 0


def check_collector(name, docs, variant):
    kinds = by_kind(docs)
    expected = {"DaemonSet", "ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Service"}
    expected |= set(variant.get("extra_kinds", ()))
    check(set(kinds) == expected, name, f"kinds {sorted(kinds)} are not {sorted(expected)}")
    sa = one(kinds, "ServiceAccount", name)
    sa_name = sa.get("metadata", {}).get("name")
    ds = one(kinds, "DaemonSet", name)
    check(ds.get("spec", {}).get("template", {}).get("spec", {}).get("serviceAccountName") == sa_name, name, "the pods do not use the ServiceAccount")
    check_rbac(name, kinds, sa_name)
    svc = one(kinds, "Service", name)
    check(svc.get("spec", {}).get("clusterIP") == "None", name, "the metrics Service is not headless")
    if "Secret" in kinds:
        secret = one(kinds, "Secret", name)
        check(set(secret.get("data", {})) == {"token"}, name, "the token Secret does not hold exactly `token`")
        check(secret["metadata"]["name"] == variant["token_secret"], name, "the Secret is not the one the pods mount")
    check_daemonset(name, ds, variant["source"], variant)


COLLECTOR_VARIANTS = {
    "default.yaml": {"source": "ebpf", "token_secret": "policyhub-collector-token", "spool_host": True},
    "token.yaml": {
        "source": "ebpf",
        "token_secret": "policyhub-collector-token",
        "spool_host": True,
        "extra_kinds": ["Secret"],
    },
    "hubble-socket.yaml": {"source": "hubble", "token_secret": "policyhub-collector-token", "spool_host": True},
    "hubble-relay-mtls.yaml": {
        "source": "hubble",
        "token_secret": "policyhub-collector-token",
        "spool_host": True,
        "tls_env": ["POLICYHUB_HUBBLE_TLS_CA", "POLICYHUB_HUBBLE_TLS_CERT", "POLICYHUB_HUBBLE_TLS_KEY"],
    },
    "extras.yaml": {
        "source": "ebpf",
        "token_secret": "policyhub-collector-token",
        "spool_host": False,
        "bpffs": True,
        "tracefs": False,
        "extra_kinds": ["ServiceMonitor"],
    },
}


def pod_of(workload):
    return workload.get("spec", {}).get("template", {}).get("spec", {})


def check_hub(name, docs, variant):
    kinds = by_kind(docs)
    expected = {"Deployment", "Service", "ServiceAccount", "NetworkPolicy"}
    if variant.get("replicas", 2) > 1:
        expected.add("PodDisruptionBudget")
    if variant.get("postgresql"):
        expected.add("StatefulSet")
    if variant.get("postgresql") or variant.get("url"):
        expected.add("Secret")
    expected |= set(variant.get("extra_kinds", ()))
    check(set(kinds) == expected, name, f"hub kinds {sorted(kinds)} are not {sorted(expected)}")
    where = f"{name}: hub Deployment"
    deploy = next((d for d in kinds.get("Deployment", [])), {})
    spec = deploy.get("spec", {})
    pod = pod_of(deploy)
    labels = spec.get("template", {}).get("metadata", {}).get("labels", {})
    selector = spec.get("selector", {}).get("matchLabels", {})
    check(selector and all(labels.get(k) == v for k, v in selector.items()), where, "selector does not match the pod labels")
    check(spec.get("replicas") == variant.get("replicas", 2), where, f"replicas {spec.get('replicas')} is not {variant.get('replicas', 2)}")
    check(pod.get("automountServiceAccountToken") is False, where, "the service account token is mounted (the hub never calls the API)")
    containers = pod.get("containers", [])
    if not check(len(containers) == 1, where, "expected one container"):
        return
    hub = containers[0]
    check(hub.get("args") == ["serve"], where, "the container does not run `policyhub serve`")
    check_port_probes(hub, where, "http", 8080, "/health/live", "/health/ready")
    check_limits(hub, where, max_cores=4)
    check_restricted(pod, hub, where)
    env = env_of(hub)
    check(env.get("POLICYHUB_LISTEN", {}).get("value") == "0.0.0.0:8080", where, "POLICYHUB_LISTEN is not 0.0.0.0:8080")
    secret_name = variant.get("secret", "policyhub-database")
    check_database_env(env, where, secret_name, variant.get("secret_key", "url"))
    init = pod.get("initContainers", [])
    job = kinds.get("Job", [])
    if variant.get("migrations") == "job":
        check(not init, where, "an init container migrates though migrations.mode is job")
        if check(len(job) == 1, name, "no migration Job"):
            check_migrate_job(name, job[0], secret_name, variant.get("secret_key", "url"))
    elif check(len(init) == 1 and init[0].get("args") == ["migrate"], where, "no `policyhub migrate` init container"):
        check_restricted(pod, init[0], f"{where} (init)")
        check_database_env(env_of(init[0]), f"{where} (init)", secret_name, variant.get("secret_key", "url"))
    svc = next((s for s in kinds.get("Service", []) if s["spec"].get("selector") == selector), None)
    if check(svc, name, "no Service selects the hub pods"):
        check([(p.get("port"), p.get("targetPort")) for p in svc["spec"].get("ports", [])] == [(8080, "http")], name, "the hub Service is not 8080 → http")
    for pdb in kinds.get("PodDisruptionBudget", []):
        check(pdb["spec"].get("selector", {}).get("matchLabels") == selector, name, "the PodDisruptionBudget does not select the hub pods")
        check(pdb["spec"].get("minAvailable") == 1, name, "the PodDisruptionBudget does not keep one hub pod")
    for ing in kinds.get("Ingress", []):
        backends = [
            p["backend"]["service"]
            for r in ing["spec"].get("rules", [])
            for p in r.get("http", {}).get("paths", [])
        ]
        check(backends and all(b == {"name": svc["metadata"]["name"], "port": {"name": "http"}} for b in backends), name, "an Ingress path does not lead to the hub Service")
        if variant.get("tls"):
            hosts = {r["host"] for r in ing["spec"]["rules"]}
            tls_hosts = {h for t in ing["spec"].get("tls", []) for h in t.get("hosts", [])}
            check(hosts <= tls_hosts and all(t.get("secretName") for t in ing["spec"]["tls"]), name, "Ingress hosts without TLS")
    policies = {p["spec"]["podSelector"].get("matchLabels", {}).get("app.kubernetes.io/component"): p for p in kinds.get("NetworkPolicy", [])}
    np = policies.get("hub")
    if check(np and np["spec"]["podSelector"]["matchLabels"] == selector, name, "no NetworkPolicy selects the hub pods"):
        check(sorted(np["spec"].get("policyTypes", [])) == ["Egress", "Ingress"], name, "the hub NetworkPolicy does not isolate both directions")
    for secret in kinds.get("Secret", []):
        keys = {"url", "password"} if variant.get("postgresql") else {"url"}
        check(set(secret.get("data", {})) == keys, name, f"the database Secret does not hold exactly {sorted(keys)}")
        check(secret["metadata"]["name"] == secret_name, name, "the database Secret is not the one the pods read")
    if variant.get("postgresql"):
        check_postgresql(name, kinds, selector, secret_name)


def check_database_env(env, where, secret_name, key):
    """The database URL comes from the Secret, never as a plain value."""
    ref = env.get("POLICYHUB_DATABASE_URL", {}).get("valueFrom", {}).get("secretKeyRef", {})
    check(ref == {"name": secret_name, "key": key}, where, f"POLICYHUB_DATABASE_URL is not read from the Secret {secret_name} (key {key})")
    for var, e in env.items():
        check(not str(e.get("value", "")).startswith("postgres"), where, f"{var} holds a database URL in plain text")


def check_migrate_job(name, job, secret_name, key):
    where = f"{name}: migration Job"
    hooks = set(job["metadata"].get("annotations", {}).get("helm.sh/hook", "").split(","))
    check(hooks == {"pre-install", "pre-upgrade"}, where, "not a pre-install, pre-upgrade hook")
    pod = pod_of(job)
    check(pod.get("restartPolicy") == "Never", where, "restartPolicy is not Never")
    c = pod.get("containers", [{}])[0]
    check(c.get("args") == ["migrate"], where, "does not run `policyhub migrate`")
    check_restricted(pod, c, where)
    check_database_env(env_of(c), where, secret_name, key)


def check_postgresql(name, kinds, hub_selector, secret_name):
    where = f"{name}: PostgreSQL StatefulSet"
    sts = next(iter(kinds.get("StatefulSet", [])), {})
    check(sts["metadata"].get("annotations", {}).get("policyhub.io/evaluation-only") == "true", where, "not marked evaluation-only")
    check(sts["spec"].get("replicas") == 1, where, "more than one instance")
    pod = pod_of(sts)
    c = pod.get("containers", [{}])[0]
    claims = [t["metadata"]["name"] for t in sts["spec"].get("volumeClaimTemplates", [])]
    check_restricted(pod, c, where, claims)
    env = env_of(c)
    ref = env.get("POSTGRES_PASSWORD", {}).get("valueFrom", {}).get("secretKeyRef", {})
    check(ref == {"name": secret_name, "key": "password"}, where, "POSTGRES_PASSWORD is not read from the database Secret")
    selector = sts["spec"]["selector"]["matchLabels"]
    svc = [s for s in kinds.get("Service", []) if s["spec"].get("selector") == selector]
    check(len(svc) == 1 and svc[0]["spec"]["ports"][0]["port"] == 5432, where, "no Service on 5432")
    policies = [p for p in kinds.get("NetworkPolicy", []) if p["spec"]["podSelector"].get("matchLabels") == selector]
    if check(len(policies) == 1, where, "no NetworkPolicy isolates PostgreSQL"):
        peers = [f for r in policies[0]["spec"].get("ingress", []) for f in r.get("from", [])]
        check(peers == [{"podSelector": {"matchLabels": hub_selector}}], where, "PostgreSQL accepts more than the hub pods")


def check_umbrella(name, docs, variant):
    """The umbrella's rendering: each subchart's objects checked by that chart's rules."""
    parts = {}
    for d in docs:
        parts.setdefault(d.get("metadata", {}).get("labels", {}).get("app.kubernetes.io/name"), []).append(d)
    check(set(parts) <= {"policyhub-hub", "policyhub-collector"}, name, f"objects of unknown charts: {sorted(set(parts) - {'policyhub-hub', 'policyhub-collector'}, key=str)}")
    for part, check_part in (("policyhub-hub", check_hub), ("policyhub-collector", check_collector)):
        key = part.split("-")[1]
        if variant.get(key) is None:
            check(part not in parts, name, f"{part} objects though it is disabled")
        elif check(part in parts, name, f"no {part} objects"):
            check_part(f"{name} ({key})", parts[part], variant[key])


HUB_VARIANTS = {
    "bundled-postgresql.yaml": {"postgresql": True},
    "existing-secret.yaml": {"secret": "policyhub-db", "secret_key": "url"},
    "url-ingress-tls.yaml": {"url": True, "replicas": 3, "tls": True, "extra_kinds": ["Ingress", "ServiceMonitor"]},
    "migrate-job.yaml": {"secret": "policyhub-db", "secret_key": "dsn", "migrations": "job", "replicas": 1, "extra_kinds": ["Job"]},
}

# The first two are README.md's `helm install` commands.
UMBRELLA_VARIANTS = {
    "readme-evaluation.yaml": {"hub": {"postgresql": True}, "collector": COLLECTOR_VARIANTS["default.yaml"]},
    "readme-production.yaml": {
        "hub": {"secret": "policyhub-database", "replicas": 3, "tls": True, "extra_kinds": ["Ingress"]},
        "collector": COLLECTOR_VARIANTS["default.yaml"],
    },
    "hub-only.yaml": {"hub": {"secret": "policyhub-db", "secret_key": "url"}},
}

# Chart name → (variants, the check of one rendering, subcharts whose values are checked).
CHARTS = {
    "policyhub-collector": (COLLECTOR_VARIANTS, check_collector, None),
    "policyhub-hub": (HUB_VARIANTS, check_hub, None),
    "policyhub": (UMBRELLA_VARIANTS, check_umbrella, ("charts/hub", "charts/collector")),
}


def value_paths(node, prefix=()):
    """Every path of values.yaml (maps only; lists and scalars are leaves)."""
    yield prefix
    if isinstance(node, dict):
        for k, v in node.items():
            yield from value_paths(v, prefix + (str(k),))


VALUE_REF = re.compile(r"\.Values((?:\.[A-Za-z_][A-Za-z0-9_]*)+)")


def check_values(chart):
    with open(os.path.join(chart, "values.yaml"), encoding="utf-8") as f:
        values = yaml.safe_load(f)
    known = set(value_paths(values))
    tdir = os.path.join(chart, "templates")
    used = set()
    for fname in sorted(os.listdir(tdir)):
        with open(os.path.join(tdir, fname), encoding="utf-8") as f:
            text = f.read()
        for m in VALUE_REF.finditer(text):
            path = tuple(m.group(1)[1:].split("."))
            used.add(path)
            check(path in known, f"templates/{fname}", f".Values.{'.'.join(path)} is not in values.yaml")
    # Every documented leaf is used by some template (no dead values).
    for path in known:
        if not path:
            continue
        node = values
        for k in path:
            node = node[k]
        if isinstance(node, dict) and node:
            continue
        check(
            any(u[: len(path)] == path or path[: len(u)] == u for u in used),
            "values.yaml",
            f"{'.'.join(path)} is used by no template",
        )


def main():
    chart, render_dir = sys.argv[1], sys.argv[2]
    with open(os.path.join(chart, "Chart.yaml"), encoding="utf-8") as f:
        chart_name = yaml.safe_load(f)["name"]
    variants, check_render, subcharts = CHARTS[chart_name]
    for values_dir in [os.path.join(chart, s) for s in subcharts] if subcharts else [chart]:
        check_values(values_dir)
    for fname, variant in variants.items():
        path = os.path.join(render_dir, fname)
        if check(os.path.exists(path), fname, "rendering missing"):
            docs = load(path)
            check_common(fname, docs)
            check_render(fname, docs, variant)
    for p in PROBLEMS:
        print(p, file=sys.stderr)
    if PROBLEMS:
        print(f"{chart_name} chart: {len(PROBLEMS)} problem(s)", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

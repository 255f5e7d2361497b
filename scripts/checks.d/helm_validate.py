#!/usr/bin/python3
"""Validates the collector chart's renderings (called by scripts/checks.d/helm.sh).

    helm_validate.py CHART_DIR RENDER_DIR

RENDER_DIR holds one `helm template` output per variant (default.yaml, token.yaml,
hubble-socket.yaml, hubble-relay-mtls.yaml, extras.yaml). Checks the kinds, the DaemonSet's
security context, capabilities, mounts, env and probes, the exact RBAC rules, and that
every `.Values.x.y` a template references exists in values.yaml. Prints every problem and
exits 1 when there is one. Needs PyYAML and the Kubernetes client (python3-kubernetes)
for its models (no cluster is contacted).
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

    port = next((p for p in c.get("ports", []) if p.get("name") == "metrics"), None)
    check(port and port.get("containerPort") == 9464, where, "metrics port 9464 missing")
    for probe, path in (("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")):
        get = c.get(probe, {}).get("httpGet", {})
        check(get.get("path") == path and get.get("port") in ("metrics", 9464), where, f"{probe} is not GET {path} on the metrics port")

    limits = c.get("resources", {}).get("limits", {})
    check(0 < cpu_cores(limits.get("cpu")) <= 1, where, "no CPU limit of at most one core")
    check(limits.get("memory"), where, "no memory limit")

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


def cpu_cores(quantity):
    """A CPU quantity (`1`, `500m`, `0.5`) in cores; 0 when absent or unreadable."""
    q = str(quantity or "")
    try:
        return int(q[:-1]) / 1000 if q.endswith("m") else float(q)
    except ValueError:
        return 0


def check_render(path, variant):
    name = os.path.basename(path)
    docs = load(path)
    kinds = by_kind(docs)
    check_common(name, docs)
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


VARIANTS = {
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
    check_values(chart)
    for fname, variant in VARIANTS.items():
        path = os.path.join(render_dir, fname)
        if check(os.path.exists(path), fname, "rendering missing"):
            check_render(path, variant)
    for p in PROBLEMS:
        print(p, file=sys.stderr)
    if PROBLEMS:
        print(f"collector chart: {len(PROBLEMS)} problem(s)", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

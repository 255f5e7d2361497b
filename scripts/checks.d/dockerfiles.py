#!/usr/bin/python3
"""deploy/Dockerfile's images, without building them (called by scripts/checks.d/images.sh).

    dockerfiles.py conventions CARGO_METADATA_JSON DOCKERFILE IMAGE...
    dockerfiles.py run DOCKERFILE IMAGE BIN_DIR WORKDIR

`conventions`:
Builder stages start from `rust:${RUST_VERSION}-${DEBIAN_RELEASE}` and run
`cargo build --locked --profile dist` for packages and binaries that exist in the
workspace (cargo metadata); the `runtime` stage is `debian:${DEBIAN_RELEASE}-slim` with
the common OCI labels. Each IMAGE is a target stage built FROM runtime with its own title
and description labels, the numeric non-root `USER 10001:10001`, a RUN that starts each
binary it copies (a missing shared library fails the build) and an exec-form ENTRYPOINT
or CMD. Every COPY source exists in the repository, and the workspace defines the `dist`
profile.

`run`: starts IMAGE's entrypoint as the image would (its ENTRYPOINT, CMD and ENV), with
the binaries of BIN_DIR (a local cargo build) standing in for /usr/local/bin and WORKDIR
for the image's data directories, the listening address moved to a free local port; the
image's smoke commands (`RUN /usr/local/bin/... --version`) run first. The entrypoint
must answer GET /health/ready with 200 within 30 seconds.

Prints every problem and exits 1 when there is one.
"""

import json
import os
import re
import shlex
import socket
import subprocess
import sys
import time
import tomllib
import urllib.request

COMMON_LABELS = ("version", "revision", "created", "licenses", "source")
IMAGE_LABELS = ("title", "description")


def stages(path):
    """Stage name → its (instruction, arguments), continuation lines joined, comments dropped."""
    out, name, current = {}, None, ""
    with open(path, encoding="utf-8") as f:
        for line in f:
            stripped = line.strip()
            if not current and (not stripped or stripped.startswith("#")):
                continue
            current += " " + stripped.rstrip("\\").strip()
            if stripped.endswith("\\"):
                continue
            word, _, rest = current.strip().partition(" ")
            current = ""
            if word.upper() == "FROM":
                base, _, name = rest.partition(" AS ")
                out[name] = [("FROM", base)]
            elif name:
                out[name].append((word.upper(), rest.strip()))
    return out


def labels(steps):
    return " ".join(a for w, a in steps if w == "LABEL")


def check(path, images, bins):
    problems = []
    all_stages = stages(path)
    built = {}
    for name, steps in all_stages.items():
        base = steps[0][1]
        text = " ".join(f"{w} {a}" for w, a in steps)
        for args in re.findall(r"cargo build ([^&]*)", text):
            words = shlex.split(args)
            profile = words[words.index("--profile") + 1] if "--profile" in words[:-1] else None
            if "--locked" not in words or profile != "dist":
                problems.append(f"{path}: {name}: `cargo build {args.strip()}` is not --locked --profile dist")
            package = words[words.index("-p") + 1] if "-p" in words[:-1] else None
            for i, w in enumerate(words[:-1]):
                if w == "--bin":
                    built.setdefault(name, set()).add(words[i + 1])
                    if words[i + 1] not in bins.get(package, ()):
                        problems.append(f"{path}: {name}: package {package} has no binary {words[i + 1]}")
        if base.startswith("rust:") and base != "rust:${RUST_VERSION}-${DEBIAN_RELEASE}":
            problems.append(f"{path}: {name}: builder base {base} is not rust:${{RUST_VERSION}}-${{DEBIAN_RELEASE}}")
        for word, args in steps:
            if word == "COPY" and "--from=" not in args:
                for source in shlex.split(args)[:-1]:
                    if not os.path.exists(source):
                        problems.append(f"{path}: {name}: COPY source {source} does not exist")
    runtime = all_stages.get("runtime", [("FROM", "")])
    if runtime[0][1] != "debian:${DEBIAN_RELEASE}-slim":
        problems.append(f"{path}: the runtime stage is not debian:${{DEBIAN_RELEASE}}-slim")
    for label in COMMON_LABELS:
        if f"org.opencontainers.image.{label}=" not in labels(runtime):
            problems.append(f"{path}: runtime: label org.opencontainers.image.{label} missing")
    for image in images:
        steps = all_stages.get(image)
        if not steps:
            problems.append(f"{path}: no stage {image}")
            continue
        if steps[0][1] != "runtime":
            problems.append(f"{path}: {image} is not built FROM runtime")
        for label in IMAGE_LABELS:
            if f"org.opencontainers.image.{label}=" not in labels(steps):
                problems.append(f"{path}: {image}: label org.opencontainers.image.{label} missing")
        users = [a for w, a in steps if w == "USER"]
        if users != ["10001:10001"]:
            problems.append(f"{path}: {image}: USER is {users}, not 10001:10001")
        runs = " ".join(a for w, a in steps if w == "RUN") + " "
        for w, a in steps:
            if w == "COPY" and "--from=" in a:
                source = a.split("--from=")[1].split()[0]
                for binary in built.get(source, ()):
                    if f"/usr/local/bin/{binary} " not in runs:
                        problems.append(f"{path}: {image}: {binary} is never started in the build (smoke run)")
        if not any(w in ("ENTRYPOINT", "CMD") and a.startswith("[") for w, a in steps):
            problems.append(f"{path}: {image}: no exec-form ENTRYPOINT or CMD")
    return problems


def run_image(path, image, bin_dir, workdir):
    """Problems found running `image`'s entrypoint from local binaries (see the module doc)."""
    steps = stages(path).get(image)
    if not steps:
        return [f"{path}: no stage {image}"]
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]

    def local(text):
        text = text.replace("/usr/local/bin/", bin_dir.rstrip("/") + "/")
        text = re.sub(r"0\.0\.0\.0:\d+", f"127.0.0.1:{port}", text)
        return re.sub(r"/var/lib/[a-z-]+", workdir, text)

    problems = []
    for word, args in steps:
        if word == "RUN" and args.startswith("/usr/local/bin/") and args.endswith("--version"):
            done = subprocess.run(shlex.split(local(args)), capture_output=True, text=True, check=False)
            if done.returncode != 0:
                problems.append(f"{image}: `{args}` failed: {done.stderr.strip()}")
    env = dict(os.environ)
    command = []
    for word, args in steps:
        if word == "ENV":
            env.update(dict(w.split("=", 1) for w in shlex.split(local(args))))
        elif word in ("ENTRYPOINT", "CMD"):
            command += [local(a) for a in json.loads(args)]
    with open(os.path.join(workdir, f"{image}.log"), "w", encoding="utf-8") as log:
        process = subprocess.Popen(command, env=env, cwd=workdir, stdout=log, stderr=log)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/health/ready", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                with open(os.path.join(workdir, f"{image}.log"), encoding="utf-8") as log:
                    problems.append(f"{image}: {command} never answered /health/ready: {log.read()[-2000:]}")
                break
            time.sleep(0.2)
    finally:
        process.terminate()
        process.wait(timeout=30)
    return problems


def main():
    if sys.argv[1] == "run":
        problems = run_image(*sys.argv[2:6])
        for p in problems:
            print(p, file=sys.stderr)
        return 1 if problems else 0
    del sys.argv[1]
    with open(sys.argv[1], encoding="utf-8") as f:
        metadata = json.load(f)
    bins = {
        p["name"]: {t["name"] for t in p["targets"] if "bin" in t["kind"]}
        for p in metadata["packages"]
    }
    problems = []
    with open("Cargo.toml", "rb") as f:
        dist = tomllib.load(f).get("profile", {}).get("dist", {})
    if dist.get("inherits") != "release" or dist.get("lto") not in ("fat", True) or dist.get("codegen-units") != 1 or not dist.get("strip"):
        problems.append("Cargo.toml: [profile.dist] does not inherit release with LTO, one codegen unit and strip")
    problems += check(sys.argv[2], sys.argv[3:], bins)
    for p in problems:
        print(p, file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/python3
"""The conventions the project's Dockerfiles share (called by scripts/checks.d/images.sh).

    dockerfiles.py CARGO_METADATA_JSON DOCKERFILE...

Each Dockerfile: a `rust:${RUST_VERSION}-${DEBIAN_RELEASE}` builder running
`cargo build --locked --profile dist` for packages and binaries that exist in the
workspace (cargo metadata), a final `debian:${DEBIAN_RELEASE}-slim` stage with the
numeric non-root `USER 10001:10001`, the OCI labels, a RUN that starts each binary it
copies (a missing shared library fails the build), an exec-form ENTRYPOINT or CMD, and
only COPY sources that exist in the repository. Also that the workspace defines the
`dist` profile. Prints every problem and exits 1 when there is one.
"""

import json
import os
import re
import shlex
import sys
import tomllib

LABELS = ("title", "description", "version", "revision", "created", "licenses", "source")


def instructions(path):
    """(instruction, arguments) with continuation lines joined and comments dropped."""
    out, current = [], ""
    with open(path, encoding="utf-8") as f:
        for line in f:
            stripped = line.strip()
            if not current and (not stripped or stripped.startswith("#")):
                continue
            current += " " + stripped.rstrip("\\").strip()
            if not stripped.endswith("\\"):
                word, _, rest = current.strip().partition(" ")
                out.append((word.upper(), rest.strip()))
                current = ""
    return out


def check_dockerfile(path, bins):
    problems = []
    steps = instructions(path)
    froms = [i for i, (word, _) in enumerate(steps) if word == "FROM"]
    if len(froms) < 2:
        return [f"{path}: not a multi-stage build"]
    if not steps[froms[0]][1].startswith("rust:${RUST_VERSION}-${DEBIAN_RELEASE} AS builder"):
        problems.append(f"{path}: the first stage is not the rust builder")
    if steps[froms[-1]][1] != "debian:${DEBIAN_RELEASE}-slim":
        problems.append(f"{path}: the final stage is not debian:${{DEBIAN_RELEASE}}-slim")
    final = steps[froms[-1] :]
    text = " ".join(f"{w} {a}" for w, a in steps)
    builds = re.findall(r"cargo build ([^&]*)", text)
    if not builds:
        problems.append(f"{path}: no cargo build")
    built = set()
    for args in builds:
        words = shlex.split(args)
        profile = words[words.index("--profile") + 1] if "--profile" in words[:-1] else None
        if "--locked" not in words or profile != "dist":
            problems.append(f"{path}: `cargo build {args.strip()}` is not --locked --profile dist")
        package = words[words.index("-p") + 1] if "-p" in words else None
        for i, w in enumerate(words):
            if w == "--bin":
                name = words[i + 1]
                built.add(name)
                if name not in bins.get(package, ()):
                    problems.append(f"{path}: package {package} has no binary {name}")
    users = [a for w, a in final if w == "USER"]
    if users != ["10001:10001"]:
        problems.append(f"{path}: the final stage's USER is {users}, not 10001:10001")
    labels = " ".join(a for w, a in final if w == "LABEL")
    for label in LABELS:
        if f"org.opencontainers.image.{label}=" not in labels:
            problems.append(f"{path}: label org.opencontainers.image.{label} missing")
    runs = " ".join(a for w, a in final if w == "RUN")
    for name in built:
        if f"/usr/local/bin/{name} " not in runs + " ":
            problems.append(f"{path}: {name} is never started in the build (smoke run)")
    if not any(w in ("ENTRYPOINT", "CMD") and a.startswith("[") for w, a in final):
        problems.append(f"{path}: no exec-form ENTRYPOINT or CMD")
    for word, args in steps:
        if word != "COPY" or "--from=" in args:
            continue
        for source in shlex.split(args)[:-1]:
            if not source.startswith("--") and not os.path.exists(source):
                problems.append(f"{path}: COPY source {source} does not exist")
    return problems


def main():
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
    for path in sys.argv[2:]:
        problems += check_dockerfile(path, bins)
    for p in problems:
        print(p, file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())

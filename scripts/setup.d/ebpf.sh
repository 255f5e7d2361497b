#!/usr/bin/env bash
# eBPF capture (crates/ebpf): clang compiles the BPF C at build time, bpftool dumps the
# kernel BTF into vmlinux.h, libelf/zlib/pkg-config build libbpf; the tests need iproute2,
# nftables and python3. Idempotent: installs only what `dpkg -s` reports missing.
set -euo pipefail
wanted=(clang libelf-dev zlib1g-dev pkg-config bpftool iproute2 nftables python3)
missing=()
for pkg in "${wanted[@]}"; do
  dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
done
# python3 may come from elsewhere (pyenv); only install it when no python3 runs at all.
if command -v python3 >/dev/null 2>&1; then
  missing=("${missing[@]/python3}")
fi
pkgs=()
for pkg in "${missing[@]}"; do [ -n "$pkg" ] && pkgs+=("$pkg"); done
if [ ${#pkgs[@]} -gt 0 ]; then
  echo "ebpf.sh: installing ${pkgs[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq "${pkgs[@]}"
fi
# Debian's bpftool lands in /usr/sbin; check it runs.
command -v bpftool >/dev/null 2>&1 || { echo "ebpf.sh: bpftool not on PATH" >&2; exit 1; }
command -v clang >/dev/null 2>&1 || { echo "ebpf.sh: clang not on PATH" >&2; exit 1; }

#!/usr/bin/env bash
# What the real-KVM backend (dsl/backends/qemu_kvm, tests/backends) needs on a Debian machine: QEMU with TCG's
# AMD-V, a static busybox for the initramfs, gcc and a static libc for the guest program, and apt/dpkg to fetch
# and unpack the kernel package (downloaded into ~/.cache/svmdsl, never installed). Run as root.
set -euo pipefail

packages=(qemu-system-x86 busybox-static gcc libc6-dev)
missing=()
for package in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
done
if ((${#missing[@]})); then
    apt-get update -q
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
fi
# The kernel package the backend downloads must be known to apt.
apt-cache show linux-image-cloud-amd64 >/dev/null 2>&1 || apt-get update -q

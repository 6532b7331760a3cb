#!/usr/bin/env bash
# What the documentation's browser test needs: Debian's Chromium (headless). Installed only when missing, so
# the script is cheap to call on every CI run. Needs root (CI containers run as root) and the Debian archive.
set -euo pipefail

if [[ -x /usr/bin/chromium ]]; then
    echo "docs-deps: chromium present: $(/usr/bin/chromium --version 2>/dev/null || echo unknown version)"
    exit 0
fi

if [[ $(id -u) -ne 0 ]]; then
    echo "docs-deps: /usr/bin/chromium is missing and installing it needs root (apt-get install -y chromium)" >&2
    exit 1
fi

echo "docs-deps: installing chromium"
export DEBIAN_FRONTEND=noninteractive
apt-get update
apt-get install -y chromium

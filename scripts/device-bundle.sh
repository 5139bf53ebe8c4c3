#!/usr/bin/env bash
# Packs what scripts/gpu-check.sh needs on a lent GPU machine that has no Node
# and no npm registry: this machine's node binary (.device/node.xz) and
# node_modules (.device/nm.tar.xz). Run it here after `npm ci`, then pass
# `carry: [".device/"]` to the device tool (.device/ is git-ignored; the
# carry limit is 64 MiB in all, and both files together are well under it).
#
#   bash scripts/device-bundle.sh
set -euo pipefail
cd "$(dirname "$0")/.."
[ -d node_modules ] || { echo "no node_modules: run npm ci first" >&2; exit 1; }
mkdir -p .device
xz -T0 -6 -c "$(command -v node)" >.device/node.xz
# The native build lives in build/, not node_modules: the GPU machine builds its own against its torch.
tar -cf - node_modules | xz -T0 -6 >.device/nm.tar.xz
ls -l .device
du -ch .device/* | tail -1

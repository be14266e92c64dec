#!/usr/bin/env bash
# Adds bookworm-backports to apt's sources (with the mirror of
# debian.sources) when no source names it yet, then updates apt's lists.
# For packages whose bookworm version conflicts with the image's backported
# ones (QEMU: the image has qemu-utils 10.0 from bookworm-backports); install
# them with `apt-get install -t bookworm-backports`. Needs root.
set -euo pipefail
if ! grep -rqs bookworm-backports /etc/apt/sources.list /etc/apt/sources.list.d/; then
  mirror=$(awk '/^URIs:/ { print $2; exit }' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)
  printf 'Types: deb\nURIs: %s\nSuites: bookworm-backports\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' \
    "${mirror:-http://deb.debian.org/debian}" >/etc/apt/sources.list.d/bookworm-backports.sources
fi
apt-get -o DPkg::Lock::Timeout=900 update -qq

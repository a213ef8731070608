#!/usr/bin/env bash
# Installs what building, testing and running AntHost needs on a Debian machine
# with the .NET SDK: libpcap for the NIC driver, iproute2/ethtool/nftables for the
# sandbox network, socat for the peer's echo servers, dnsmasq for the peer's DNS server,
# openssl for the TLS tests, tshark to read back what `anthost capture` wrote (its
# tests). Idempotent and quiet when
# everything is already there.
set -euo pipefail

need=()
have_pkg() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"; }
# dnsmasq-base: the binary alone, without the Debian service that would start a system-wide
# dnsmasq on install; the sandbox runs its own inside the peer namespace.
for p in libpcap0.8 libpcap-dev iproute2 ethtool nftables socat procps curl dnsmasq-base openssl tshark; do
  have_pkg "$p" || need+=("$p")
done

if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "prereqs: missing packages ${need[*]} and not root; install them with apt-get" >&2
    exit 1
  fi
  echo "prereqs: installing ${need[*]}"
  export DEBIAN_FRONTEND=noninteractive
  # tshark's package asks whether non-root users may capture: no (we read files only).
  echo "wireshark-common wireshark-common/install-setuid boolean false" | debconf-set-selections
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

if ! command -v dotnet >/dev/null 2>&1; then
  echo "prereqs: the .NET 10 SDK (dotnet) is not on PATH" >&2
  exit 1
fi

#!/usr/bin/env bash
# Install the servers that the component tests start themselves: Prometheus and
# Redis, from Debian's packages. Safe to re-run: a package already installed is
# left alone. The packages' service units are not started, because every test
# starts its own process on a loopback port with temporary storage.
set -euo pipefail

packages=(prometheus redis-server)
# The binary each package provides, checked on PATH after the install.
binaries=(prometheus redis-server)

if [[ "$(id -u)" -eq 0 ]]; then
    sudo=()
else
    sudo=(sudo)
fi

missing=()
for package in "${packages[@]}"; do
    if dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed"; then
        echo "install-test-services: $package already installed ($(dpkg-query -W -f='${Version}' "$package"))"
    else
        missing+=("$package")
    fi
done

if [[ ${#missing[@]} -gt 0 ]]; then
    echo "install-test-services: installing ${missing[*]} with apt-get"
    "${sudo[@]}" apt-get update -qq
    # A policy-rc.d that exits with 101 stops invoke-rc.d from starting the
    # services that the packages' postinst scripts would otherwise start.
    policy=/usr/sbin/policy-rc.d
    created_policy=0
    if [[ ! -e "$policy" ]]; then
        printf '#!/bin/sh\nexit 101\n' | "${sudo[@]}" tee "$policy" >/dev/null
        "${sudo[@]}" chmod +x "$policy"
        created_policy=1
    fi
    status=0
    DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq \
        --no-install-recommends "${missing[@]}" || status=$?
    if [[ $created_policy -eq 1 ]]; then
        "${sudo[@]}" rm -f "$policy"
    fi
    if [[ $status -ne 0 ]]; then
        echo "install-test-services: apt-get install failed with exit code $status" >&2
        exit "$status"
    fi
    for package in "${missing[@]}"; do
        echo "install-test-services: installed $package ($(dpkg-query -W -f='${Version}' "$package"))"
    done
fi

for binary in "${binaries[@]}"; do
    if ! command -v "$binary" >/dev/null 2>&1; then
        echo "install-test-services: $binary is not on PATH after the install" >&2
        exit 1
    fi
    echo "install-test-services: $binary is $(command -v "$binary")"
done

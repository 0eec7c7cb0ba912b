#!/usr/bin/env bash
# Build, or reuse, the binaries of the local Kubernetes control plane that the
# cluster tests run: etcd, kube-apiserver, kube-controller-manager, kubectl, helm.
#
# Sources are the Go modules pinned under hack/controlplane/, fetched through the
# Go module proxy. Binaries go to a cache outside the repository,
#   ${XDG_CACHE_HOME:-$HOME/.cache}/adaptrec/k8s-<kubernetes version>/
# and a binary is rebuilt only when its module files or the Go version change, so
# running this script again is cheap. When KUBEBUILDER_ASSETS names a folder that
# already holds a binary (controller-runtime's envtest layout), that binary is used
# and not built. envtest folders have no kube-controller-manager or helm, so those
# two are still built here.
#
# Usage: scripts/build-k8s.sh
# Environment: GO (Go command, default: go on PATH, else /usr/local/go/bin/go),
# KUBEBUILDER_ASSETS, XDG_CACHE_HOME.
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
modules="$repo_root/hack/controlplane"

log() {
    echo "build-k8s: $*"
}

die() {
    echo "build-k8s: error: $*" >&2
    exit 1
}

# Resolve the Go toolchain.
go_cmd="${GO:-}"
if [[ -z "$go_cmd" ]]; then
    if command -v go >/dev/null 2>&1; then
        go_cmd="$(command -v go)"
    elif [[ -x /usr/local/go/bin/go ]]; then
        go_cmd=/usr/local/go/bin/go
    fi
fi
[[ -n "$go_cmd" && -x "$go_cmd" ]] \
    || die "Go not found; install Go 1.26 or set GO=/path/to/go"
go_version="$("$go_cmd" env GOVERSION)"

# Read a module's pinned version from one of the go.mod files.
module_version() {
    local module_dir="$1" module="$2"
    (cd "$modules/$module_dir" && "$go_cmd" list -m -f '{{.Version}}' "$module")
}

k8s_version="$(module_version kubernetes k8s.io/kubernetes)"
etcd_version="$(module_version etcd go.etcd.io/etcd/server/v3)"
helm_version="$(module_version helm helm.sh/helm/v4)"
cache_dir="${XDG_CACHE_HOME:-$HOME/.cache}/adaptrec/k8s-$k8s_version"
mkdir -p "$cache_dir"
log "kubernetes $k8s_version, etcd $etcd_version, helm $helm_version, $go_version"
log "cache: $cache_dir"

# A binary's stamp is a hash of everything that decides its content. A stamp that
# differs from the stored one means the binary is stale.
stamp_of() {
    local module_dir="$1"
    {
        echo "$go_version"
        cat "$modules/$module_dir"/go.mod "$modules/$module_dir"/go.sum
        find "$modules/$module_dir" -name '*.go' -type f -print0 | sort -z \
            | xargs -0 -r cat
    } | sha256sum | cut -d' ' -f1
}

# Return 0 when the binary is taken from KUBEBUILDER_ASSETS or the cache is fresh.
is_available() {
    local name="$1" stamp="$2"
    if [[ -n "${KUBEBUILDER_ASSETS:-}" && -x "$KUBEBUILDER_ASSETS/$name" ]]; then
        log "$name: using $KUBEBUILDER_ASSETS/$name (KUBEBUILDER_ASSETS)"
        return 0
    fi
    if [[ -x "$cache_dir/$name" && -f "$cache_dir/.$name.stamp" \
        && "$(cat "$cache_dir/.$name.stamp")" == "$stamp" ]]; then
        log "$name: up to date in the cache"
        return 0
    fi
    return 1
}

# Run go build at low priority. `go build -v` names each package it compiles, so
# the count is printed as progress and every other line (compiler errors) as is.
# -buildvcs=false: the modules sit inside adaptrec's git checkout, whose state
# says nothing about the binaries, and stamping it fails where git is missing.
go_build() {
    local module_dir="$1"
    shift
    (cd "$modules/$module_dir" \
        && CGO_ENABLED=0 nice -n 10 "$go_cmd" build -v -trimpath -buildvcs=false "$@" 2>&1) \
        | awk '
            /^[^ :]+$/ { count++; if (count % 200 == 0) { print "build-k8s:   " count " packages compiled"; fflush() } ; next }
            { print; fflush() }
        '
}

# Build the named binaries of one module into the cache, then stamp them. The
# binaries are written to a temporary folder first, so an interrupted build
# never leaves a half-written binary with a fresh stamp.
build_binaries() {
    local module_dir="$1" stamp="$2" ldflags="$3"
    shift 3
    local packages=("$@") names=() started tmp_dir
    for package in "${packages[@]}"; do
        names+=("$(basename "$package")")
    done
    started=$(date +%s)
    tmp_dir="$(mktemp -d "$cache_dir/.build.XXXXXX")"
    log "building ${names[*]} from $module_dir (a cold build takes minutes; progress follows)"
    if ! go_build "$module_dir" -ldflags "$ldflags" -o "$tmp_dir/" "${packages[@]}"; then
        rm -rf "$tmp_dir"
        die "go build failed in hack/controlplane/$module_dir (output above)"
    fi
    for name in "${names[@]}"; do
        mv -f "$tmp_dir/$name" "$cache_dir/$name"
        echo "$stamp" >"$cache_dir/.$name.stamp"
    done
    rm -rf "$tmp_dir"
    log "built ${names[*]} in $(($(date +%s) - started)) s"
}

# Kubernetes: the version variables are the ones upstream sets in
# hack/lib/version.sh, so /version and `kubectl version` report the release.
k8s_stamp="$(stamp_of kubernetes)"
k8s_minor="$(echo "$k8s_version" | cut -d. -f2)"
k8s_ldflags="-s -w"
for package in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    k8s_ldflags+=" -X $package.gitVersion=$k8s_version"
    k8s_ldflags+=" -X $package.gitMajor=1 -X $package.gitMinor=$k8s_minor"
    k8s_ldflags+=" -X $package.gitTreeState=clean"
done
k8s_packages=()
for name in kube-apiserver kube-controller-manager kubectl; do
    if ! is_available "$name" "$k8s_stamp"; then
        k8s_packages+=("k8s.io/kubernetes/cmd/$name")
    fi
done
if ((${#k8s_packages[@]} > 0)); then
    build_binaries kubernetes "$k8s_stamp" "$k8s_ldflags" "${k8s_packages[@]}"
fi

# etcd: its version is compiled into its source, so no ldflags are needed.
etcd_stamp="$(stamp_of etcd)"
if ! is_available etcd "$etcd_stamp"; then
    build_binaries etcd "$etcd_stamp" "-s -w" adaptrec.local/hack/controlplane/etcd
fi

# Helm: the version variable is the one Helm's own Makefile sets.
helm_stamp="$(stamp_of helm)"
if ! is_available helm "$helm_stamp"; then
    build_binaries helm "$helm_stamp" \
        "-s -w -X helm.sh/helm/v4/internal/version.version=$helm_version" \
        helm.sh/helm/v4/cmd/helm
fi

# Report where each binary is.
for name in etcd kube-apiserver kube-controller-manager kubectl helm; do
    if [[ -n "${KUBEBUILDER_ASSETS:-}" && -x "$KUBEBUILDER_ASSETS/$name" ]]; then
        log "  $name: $KUBEBUILDER_ASSETS/$name"
    else
        log "  $name: $cache_dir/$name"
    fi
done
log "done"

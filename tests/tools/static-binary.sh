#!/usr/bin/env bash
# Builds crew-operator as the container image does (a static binary, so it runs on distroless/static with no libc)
# and checks what can be checked without a container engine: no dynamic loader or shared libraries are needed, and
# the binary runs with an empty environment. Usage: tests/tools/static-binary.sh (from the repository root).
set -euo pipefail
triple=$(rustc -vV | sed -n 's/^host: //p')
export RUSTFLAGS="-C target-feature=+crt-static"
cargo build --quiet --release --locked --target "$triple" -p crew-operator --bin crew-operator
bin="target/$triple/release/crew-operator"

fail() { echo "static-binary: $*" >&2; exit 1; }
linkage=$(ldd "$bin" 2>&1 || true)
case "$linkage" in
  *"not a dynamic executable"* | *"statically linked"*) ;;
  *) fail "$bin is dynamically linked: $linkage" ;;
esac
if LC_ALL=C grep -aq 'ld-linux' <(head -c 4096 "$bin"); then
  fail "$bin asks for a dynamic loader (PT_INTERP)"
fi
env -i "$bin" --version >/dev/null || fail "--version failed with an empty environment"
env -i "$bin" run --help | grep -q -- '--leader-election' || fail "run --help is incomplete"
env -i "$bin" crds | grep -q 'name: crewexecutions.crew.dev' || fail "crds printed no CRD"
echo "static-binary: $bin is static ($(du -h "$bin" | cut -f1)), runs with an empty environment"

#!/usr/bin/env bash
# Regenerates st2d/link-order/symbols.txt, the order in which the release link lays out
# st2d's functions (see st2d/build.rs and docs/performance.md, "Laying out the code a start
# runs").
#
# It builds the release binary, runs `st2d serve` under valgrind's callgrind with the given
# packs, logs in, asks for one action, and waits: every function that ran up to then is
# listed first. Then it drives the usual first requests of a session (lists, a run of
# core.local, the datastore) and lists the functions those added. Names are sorted within
# each group, so a regeneration diffs cleanly.
#
# Usage: st2d/link-order/generate.sh [PACKS_DIR [CONFIGS_DIR]]
# Needs: valgrind, curl. Run it after a toolchain or dependency update (symbol names carry
# hashes of both); a stale list only lays out less of the code, it never breaks a build.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
packs="${1:-$root/../shared/corpus/packs}"
configs="${2:-$root/../shared/corpus/configs}"
for tool in valgrind curl; do
  command -v "$tool" >/dev/null || { echo "generate.sh: $tool is needed" >&2; exit 1; }
done

cd "$root"
cargo build --release -p st2d
target="${CARGO_TARGET_DIR:-$root/target}"
exe="$target/release/st2d"

work="$(mktemp -d)"
pid=""
trap 'kill "$pid" 2>/dev/null || true; rm -rf "$work"' EXIT
# htpasswd's {SHA} form of "password": logging in does not spend time in bcrypt.
echo 'bench:{SHA}W6ph5Mm5Pz8GgiULbPgzG37mj9g=' > "$work/users"
port=$((20000 + RANDOM % 20000))
url="http://127.0.0.1:$port"
configs_arg=()
[ -d "$configs" ] && configs_arg=(--configs-dir "$configs")

valgrind --tool=callgrind --callgrind-out-file="$work/cg.out" --dump-instr=no \
  --compress-strings=no --demangle=no \
  "$exe" serve --data-dir "$work/data" --users-file "$work/users" \
  --api-listen "127.0.0.1:$port" --auth-listen "127.0.0.1:$port" \
  --stream-listen "127.0.0.1:$port" --packs-dir "$packs" "${configs_arg[@]}" \
  > "$work/serve.log" 2>&1 &
pid=$!

token=""
for _ in $(seq 1 600); do
  token="$(curl -sf -u bench:password -X POST -H 'Content-Type: application/json' -d '{}' \
    "$url/auth/v1/tokens" | sed -n 's/.*"token": *"\([^"]*\)".*/\1/p')" || true
  [ -n "$token" ] && break
  kill -0 "$pid" 2>/dev/null || { cat "$work/serve.log" >&2; exit 1; }
  sleep 0.5
done
[ -n "$token" ] || { echo "generate.sh: st2d serve did not answer" >&2; exit 1; }
api() { curl -sf -o /dev/null -H "X-Auth-Token: $token" "$@"; }
api "$url/v1/actions/core.local"
sleep 5
callgrind_control --dump=start "$pid" >/dev/null

api "$url/v1/actions?limit=50"
api "$url/v1/executions?limit=50"
api "$url/v1/rules"
api "$url/v1/packs"
api -X POST -H 'Content-Type: application/json' \
  -d '{"action": "core.local", "parameters": {"cmd": "echo hi"}}' "$url/v1/executions"
sleep 2
api "$url/v1/executions?limit=5"
api -X PUT -H 'Content-Type: application/json' -d '{"name": "k", "value": "v"}' "$url/v1/keys/k"
api "$url/v1/keys/k"
api -X POST -H 'Content-Type: application/json' \
  -d '{"trigger": "core.st2.sensor.process_spawn", "payload": {"pid": 1}}' "$url/v1/webhooks/st2"
sleep 2
kill -TERM "$pid"
wait "$pid" || true

# The functions of st2d itself (object $exe) that have a cost line in a dump.
functions() {
  awk -v exe="$exe" '
    /^ob=/ { ob = substr($0, 4) }
    /^fn=/ && ob == exe { name = substr($0, 4); sub(/'"'"'[0-9]+$/, "", name); print name }
  ' "$1" | LC_ALL=C sort -u
}
start="$(ls "$work"/cg.out.* | head -n 1)"
functions "$start" > "$work/start"
functions "$work/cg.out" > "$work/later"
{
  cat "$work/start"
  LC_ALL=C comm -13 "$work/start" "$work/later"
} > "$here/symbols.txt"
echo "generate.sh: $(wc -l < "$work/start") functions at start, $(wc -l < "$here/symbols.txt") in all"

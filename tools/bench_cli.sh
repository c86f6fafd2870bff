#!/usr/bin/env bash
# Wall time of `st2 action list` against a release `st2d serve` on a fresh data directory:
# median of 20 runs after one warm-up, for our client and, when its venv exists (see
# .ci/st2client-test), the Python st2client 3.9.0. See docs/performance.md.
#
#   cargo build --release -p st2d --bin st2 --bin st2d
#   tools/bench_cli.sh [target/release]
set -euo pipefail
BIN="${1:-${CARGO_TARGET_DIR:-target}/release}"
VENV="${ST2CLIENT_VENV:-${HOME}/.cache/st2-rs/st2client-3.9.0}"
WORK="$(mktemp -d)"
PID=""
cleanup() {
    if [ -n "$PID" ]; then
        kill -TERM "$PID" 2>/dev/null || true
        wait "$PID" 2>/dev/null || true
    fi
    rm -rf "$WORK"
}
trap cleanup EXIT
read -r API AUTH STREAM < <(python3 - <<'PY'
import socket
socks = [socket.socket() for _ in range(3)]
for s in socks:
    s.bind(("127.0.0.1", 0))
print(*(s.getsockname()[1] for s in socks))
PY
)
mkdir -p "$WORK/data" "$WORK/home"
printf 'bench-pass\n' | "$BIN/st2d" user add bench --password-stdin --data-dir "$WORK/data" >/dev/null
ST2D_LOG=warn "$BIN/st2d" serve --data-dir "$WORK/data" --api-listen "127.0.0.1:$API" \
    --auth-listen "127.0.0.1:$AUTH" --stream-listen "127.0.0.1:$STREAM" >"$WORK/st2d.log" 2>&1 &
PID=$!
for _ in $(seq 1 100); do
    if python3 -c "import socket; socket.create_connection(('127.0.0.1', $API), 0.2)" 2>/dev/null; then
        break
    fi
    sleep 0.1
done
export HOME="$WORK/home"
export ST2_API_URL="http://127.0.0.1:$API/v1" ST2_AUTH_URL="http://127.0.0.1:$AUTH"
export ST2_STREAM_URL="http://127.0.0.1:$STREAM/v1"
"$BIN/st2" login bench -p bench-pass >/dev/null
clients=("$BIN/st2")
if [ -x "$VENV/bin/st2" ]; then
    clients+=("$VENV/bin/st2")
else
    echo "(no st2client venv at $VENV: Python client not measured)"
fi
python3 - "${clients[@]}" <<'PY'
import statistics, subprocess, sys, time
for client in sys.argv[1:]:
    cmd = [client, "action", "list"]
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)  # warm-up
    times = []
    for _ in range(20):
        t = time.perf_counter()
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
        times.append((time.perf_counter() - t) * 1000)
    print(f"{client} action list: median {statistics.median(times):.1f} ms "
          f"(min {min(times):.1f}, max {max(times):.1f}, 20 runs)")
PY

#!/usr/bin/env bash
# Alternates lines between stderr and stdout: count lines, sleep_delay seconds apart.
count="${1:-100}"
delay="${2:-0.5}"
for ((n = 1; n <= count; n++)); do
    if ((n % 2 == 1)); then
        echo "stderr line ${n}" >&2
    else
        echo "stdout line ${n}"
    fi
    sleep "${delay}"
done

#!/usr/bin/env bash
# The official Alibaba Cloud IoT SDK for Python against the `serve` example, in both of its
# signing modes (tests/sdk/check_sdk.py says what is checked).
#
#   bash tests/sdk/run.sh
#
# Installs alibabacloud-iot20180120 into a virtual environment under target/ when it is not
# there yet (OTA_SDK_SPEC overrides the pip requirement; default: the version the reference's
# V3 vector was taken from), builds and starts serve on a free loopback port, runs the check,
# stops serve with SIGINT. Exits non-zero when anything fails, serve's own exit status
# included.
set -euo pipefail

cd "$(dirname "$0")/../.."
target_dir="${CARGO_TARGET_DIR:-target}"
venv="$target_dir/sdk-venv"
sdk_spec="${OTA_SDK_SPEC:-alibabacloud-iot20180120==5.1.0}"

if ! "$venv/bin/python" -c 'import alibabacloud_iot20180120' 2>/dev/null; then
    echo "sdk: installing $sdk_spec into $venv"
    python3 -m venv "$venv"
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check "$sdk_spec"
fi

# Release: CI has built it already (`cargo build --release --examples`).
cargo build --quiet --release --example serve
serve_bin="$target_dir/release/examples/serve"

log="$(mktemp)"
serve_pid=""
cleanup() {
    if [[ -n "$serve_pid" ]] && kill -0 "$serve_pid" 2>/dev/null; then
        kill "$serve_pid" 2>/dev/null || true
        wait "$serve_pid" 2>/dev/null || true
    fi
    rm -f "$log"
}
trap cleanup EXIT

"$serve_bin" --addr 127.0.0.1:0 --data tests/data/contract/tasks.jsonl --case pascal \
    --access-key testid:testsecret >"$log" 2>&1 &
serve_pid=$!

addr=""
for _ in $(seq 1 600); do
    addr="$(sed -n 's,^listening on http://,,p' "$log")"
    [[ -n "$addr" ]] && break
    if ! kill -0 "$serve_pid" 2>/dev/null; then
        echo "sdk: serve exited before listening:" >&2
        cat "$log" >&2
        exit 1
    fi
    sleep 0.1
done
if [[ -z "$addr" ]]; then
    echo "sdk: serve printed no 'listening on' line within 60 s" >&2
    exit 1
fi
echo "sdk: serve listening on $addr"

status=0
"$venv/bin/python" tests/sdk/check_sdk.py "$addr" || status=$?

kill -INT "$serve_pid"
serve_status=0
wait "$serve_pid" || serve_status=$?
serve_pid=""
if [[ "$serve_status" -ne 0 ]]; then
    echo "sdk: serve exited with status $serve_status after SIGINT" >&2
    cat "$log" >&2
    [[ "$status" -ne 0 ]] || status=1
fi
exit "$status"

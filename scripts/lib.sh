# Shared bash functions for scripts/setup, scripts/broker and scripts/test.
# Source it; it defines functions and variables only (no side effects).

# Repository root: the directory above scripts/.
KC_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

# Everything built outside the checkout lives under one cache directory, so a
# second clone (or CI with a cached $HOME/.cache) reuses it.
KC_CACHE="${KAFKACHAIN_CACHE:-$HOME/.cache/kafkachain}"
KC_TANSU_VERSION="0.6.0"
KC_TANSU_ROOT="$KC_CACHE/tansu-$KC_TANSU_VERSION"
KC_TANSU_TARGET="$KC_CACHE/tansu-target"
KC_TANSU_LOG="$KC_CACHE/tansu-install.log"
KC_VENV="$KC_ROOT/.venv"
KC_PYTHON="${KAFKACHAIN_PYTHON:-$KC_VENV/bin/python}"

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$KC_CACHE/target}"

kc_log() { printf '%s: %s\n' "${KC_PROG:-kafkachain}" "$*" >&2; }
kc_die() {
    kc_log "error: $*"
    exit 1
}

# Path of a Tansu $KC_TANSU_VERSION binary, or nothing (status 1).
# Order: $KAFKACHAIN_TANSU, the cached install, then PATH.
kc_tansu_bin() {
    local candidate
    for candidate in "${KAFKACHAIN_TANSU:-}" "$KC_TANSU_ROOT/bin/tansu" "$(command -v tansu 2>/dev/null || true)"; do
        [[ -n "$candidate" && -x "$candidate" ]] || continue
        if "$candidate" --version 2>/dev/null | grep -q "$KC_TANSU_VERSION"; then
            printf '%s\n' "$candidate"
            return 0
        fi
    done
    return 1
}

# A TCP port that was free a moment ago on 127.0.0.1 (the kernel picks it).
kc_free_port() {
    "$KC_PYTHON" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# Succeeds when the broker at $1 answers a metadata request within $2 seconds.
# A bare TCP connect is not enough: Tansu accepts connections before its
# storage is ready.
kc_probe() {
    "$KC_PYTHON" - "$1" "${2:-3}" <<'EOF' >/dev/null 2>&1
import sys
from confluent_kafka.admin import AdminClient
brokers, timeout = sys.argv[1], float(sys.argv[2])
md = AdminClient({"bootstrap.servers": brokers, "log_level": 0}).list_topics(timeout=timeout)
sys.exit(0 if md.brokers else 1)
EOF
}

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
# Apache Kafka (KRaft), assembled from Maven Central by `scripts/setup --engine kafka`:
# $KC_KAFKA_ROOT/lib holds the jars of kafka_2.13 and a log4j2 binding for slf4j 1.7
# (Kafka 4.x logs through slf4j-api 1.7.36), Maven's repository is $KC_M2.
KC_KAFKA_VERSION="4.3.1"
KC_LOG4J_VERSION="2.25.3"
KC_KAFKA_ROOT="$KC_CACHE/kafka-$KC_KAFKA_VERSION"
KC_M2="$KC_CACHE/m2"
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

# The directory of Kafka's jars, or nothing (status 1). $KAFKA_HOME/libs (an
# unpacked Apache Kafka 4.x release) if KAFKA_HOME is set, else the scripts/setup
# install, which counts only once its marker file exists (a half-finished download
# is never used).
kc_kafka_libs() {
    if [[ -n "${KAFKA_HOME:-}" ]]; then
        compgen -G "$KAFKA_HOME/libs/kafka_2.13-*.jar" >/dev/null || return 1
        printf '%s\n' "$KAFKA_HOME/libs"
        return 0
    fi
    [[ -f "$KC_KAFKA_ROOT/lib/.complete" ]] || return 1
    printf '%s\n' "$KC_KAFKA_ROOT/lib"
}

# The java launcher ($JAVA_HOME/bin/java, else java on PATH) if it is Java 17 or
# newer (what a Kafka 4.x broker needs), or nothing (status 1).
kc_java() {
    local java="${JAVA_HOME:+$JAVA_HOME/bin/}java" version
    java="$(command -v "$java" 2>/dev/null)" || return 1
    version="$("$java" -version 2>&1 | sed -n 's/.*version "\([0-9]*\).*/\1/p' | head -n 1)"
    [[ "$version" =~ ^[0-9]+$ ]] && ((version >= 17)) || return 1
    printf '%s\n' "$java"
}

# A TCP port that was free a moment ago on 127.0.0.1 (the kernel picks it).
kc_free_port() {
    "$KC_PYTHON" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# A port P such that P .. P+$1-1 were all free a moment ago (for a cluster's ports).
kc_free_ports() {
    "$KC_PYTHON" - "$1" <<'EOF'
import random, socket, sys
n = int(sys.argv[1])
for _ in range(200):
    base = random.randint(20000, 60000 - n)
    socks = []
    try:
        for p in range(base, base + n):
            s = socket.socket()
            s.bind(("127.0.0.1", p))
            socks.append(s)
    except OSError:
        continue
    finally:
        for s in socks:
            s.close()
    print(base)
    sys.exit(0)
sys.exit("no run of %d free ports found" % n)
EOF
}

# True if something accepts TCP connections on 127.0.0.1:$1.
kc_port_busy() {
    "$KC_PYTHON" -c 'import socket, sys; socket.create_connection(("127.0.0.1", int(sys.argv[1])), 1)' "$1" 2>/dev/null
}

# Succeeds when the broker at $1 answers a metadata request within $2 seconds.
# A bare TCP connect is not enough: Tansu accepts connections before its
# storage is ready. $3: optional file of librdkafka settings (key=value lines,
# e.g. the credentials of a secured cluster).
kc_probe() {
    kc_probe_brokers "$1" 1 "${2:-3}" "${3:-}"
}

# Succeeds when the cluster at $1 answers a metadata request that lists at least
# $2 brokers, within $3 seconds ($4: optional settings file, as for kc_probe).
kc_probe_brokers() {
    "$KC_PYTHON" - "$1" "$2" "${3:-3}" "${4:-}" <<'EOF' >/dev/null 2>&1
import sys
from confluent_kafka.admin import AdminClient
brokers, want, timeout, conf = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), sys.argv[4]
settings = {"bootstrap.servers": brokers, "log_level": 0}
if conf:
    settings.update(l.split("=", 1) for l in open(conf).read().splitlines() if "=" in l)
md = AdminClient(settings).list_topics(timeout=timeout)
sys.exit(0 if len(md.brokers) >= want else 1)
EOF
}

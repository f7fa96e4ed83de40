#!/usr/bin/env bash
# Local three-node Apache Kafka 4.0 cluster (KRaft, each node broker+controller, one static
# quorum of 3 voters) from the same Maven jars as kafka.sh, which it drives once per node.
# See deploy/kafka/README.md.
#
#   cluster.sh start          start the nodes not running (all at once: a node serves only once
#                             a quorum of 2 controllers is up), wait until all 3 brokers are registered
#   cluster.sh stop           SIGTERM every node (in parallel), SIGKILL after 30 s; fine if not running
#   cluster.sh status         exit 0 if every node answers, 1 otherwise (one line per node)
#   cluster.sh reset          stop, then delete $CLUSTER_DIR (keeps the jar cache)
#   cluster.sh kill N         SIGKILL node N (1-3): no controlled shutdown
#   cluster.sh start-node N   start node N again (data kept), wait until it serves
#   cluster.sh bootstrap      print the bootstrap servers (host:port,host:port,host:port)
#
# Node N (1-3) listens on 127.0.0.1:$((CLUSTER_PORT_BASE + 2N - 2)) (clients) and the next
# port (controller): 29092/29093, 29094/29095, 29096/29097 by default, clear of the shared
# single broker (9092/9093). Every topic the cluster creates by itself has replication
# factor 3 and min.insync.replicas 2 (offsets, transaction state, auto-created topics).
#
# Env: CLUSTER_DIR (<repo>/.kafka-cluster; node N in $CLUSTER_DIR/nodeN), CLUSTER_PORT_BASE
#      (29092), KAFKA_LIB_DIR (<repo>/.kafka/lib, the jar cache shared with kafka.sh),
#      KAFKA_HEAP ("-Xms128m -Xmx512m" per node), KAFKA_START_TIMEOUT (240, seconds).
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_ROOT="$(cd "$SCRIPT_DIR/../.." && pwd)"
KAFKA_SH="$SCRIPT_DIR/kafka.sh"
READY_PROBE="$SCRIPT_DIR/KafkaReady.java"
POM="$SCRIPT_DIR/pom.xml"

CLUSTER_DIR="${CLUSTER_DIR:-$REPO_ROOT/.kafka-cluster}"
CLUSTER_PORT_BASE="${CLUSTER_PORT_BASE:-29092}"
KAFKA_LIB_DIR="${KAFKA_LIB_DIR:-$REPO_ROOT/.kafka/lib}"
KAFKA_HEAP="${KAFKA_HEAP:--Xms128m -Xmx512m}"
KAFKA_START_TIMEOUT="${KAFKA_START_TIMEOUT:-240}"
NODES=(1 2 3)
HOST=127.0.0.1

[[ "$CLUSTER_DIR" == /* ]] || CLUSTER_DIR="$PWD/$CLUSTER_DIR"
[[ "$KAFKA_LIB_DIR" == /* ]] || KAFKA_LIB_DIR="$PWD/$KAFKA_LIB_DIR"

log() { echo "cluster.sh: $*"; }
die() { echo "cluster.sh: error: $*" >&2; exit 1; }

for _v in CLUSTER_PORT_BASE KAFKA_START_TIMEOUT; do
    [[ "${!_v}" =~ ^[0-9]+$ ]] || die "$_v must be a number, got '${!_v}'"
done

broker_port() { echo $((CLUSTER_PORT_BASE + 2 * $1 - 2)); }
controller_port() { echo $((CLUSTER_PORT_BASE + 2 * $1 - 1)); }
node_dir() { echo "$CLUSTER_DIR/node$1"; }

bootstrap() {
    local n out=()
    for n in "${NODES[@]}"; do out+=("$HOST:$(broker_port "$n")"); done
    local IFS=,
    echo "${out[*]}"
}

voters() {
    local n out=()
    for n in "${NODES[@]}"; do out+=("$n@$HOST:$(controller_port "$n")"); done
    local IFS=,
    echo "${out[*]}"
}

port_open() {
    (exec 3<>"/dev/tcp/$HOST/$1") 2>/dev/null
}

check_node() {
    [[ "${1:-}" =~ ^[1-3]$ ]] || die "node must be 1, 2 or 3, got '${1:-}'"
}

# kafka.sh for node $1, with the node's ports, directory and overrides.
node_kafka_sh() {
    local n="$1"
    shift
    KAFKA_PORT="$(broker_port "$n")" \
        KAFKA_CONTROLLER_PORT="$(controller_port "$n")" \
        KAFKA_DIR="$(node_dir "$n")" \
        KAFKA_LIB_DIR="$KAFKA_LIB_DIR" \
        KAFKA_HEAP="$KAFKA_HEAP" \
        KAFKA_START_TIMEOUT="$KAFKA_START_TIMEOUT" \
        KAFKA_EXTRA_PROPS="$(node_dir "$n")/cluster.properties" \
        KAFKA_CLUSTER_ID="$(cluster_id)" \
        bash "$KAFKA_SH" "$@"
}

# One id shared by the three nodes' storage, made once (a base64url UUID, as `kafka-storage random-uuid`).
cluster_id() {
    local file="$CLUSTER_DIR/cluster.id"
    if [[ ! -s "$file" ]]; then
        mkdir -p "$CLUSTER_DIR"
        head -c 16 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=\n' >"$file.tmp"
        mv "$file.tmp" "$file"
    fi
    cat "$file"
}

write_node_props() {
    local n="$1" dir
    dir="$(node_dir "$n")"
    mkdir -p "$dir"
    cat >"$dir/cluster.properties" <<EOF
node.id=$n
controller.quorum.voters=$(voters)
# Three replicas of everything the cluster creates by itself; a write needs two of them.
offsets.topic.replication.factor=3
offsets.topic.num.partitions=10
transaction.state.log.replication.factor=3
transaction.state.log.min.isr=2
transaction.state.log.num.partitions=10
share.coordinator.state.topic.replication.factor=3
share.coordinator.state.topic.min.isr=2
default.replication.factor=3
min.insync.replicas=2
unclean.leader.election.enable=false
EOF
}

jars_resolved() {
    [[ -f "$KAFKA_LIB_DIR/.pom.sha256" && "$(cat "$KAFKA_LIB_DIR/.pom.sha256")" == "$(sha256sum "$POM" | cut -d' ' -f1)" ]]
}

# Until every broker of the cluster is registered (the probe prints "N broker(s)").
wait_for_brokers() {
    local deadline=$((SECONDS + KAFKA_START_TIMEOUT)) out=""
    while ((SECONDS < deadline)); do
        out="$(java -Dlog4j2.level=ERROR -cp "$KAFKA_LIB_DIR/*" "$READY_PROBE" "$(bootstrap)" 20000 2>&1 || true)"
        if grep -q "${#NODES[@]} broker(s)" <<<"$out"; then
            log "${out##*kafka ready: }"
            return 0
        fi
        sleep 1
    done
    die "not all ${#NODES[@]} brokers registered within ${KAFKA_START_TIMEOUT}s: $out"
}

cmd_start() {
    local n pids=() failed=0 started=$SECONDS
    cluster_id >/dev/null
    for n in "${NODES[@]}"; do
        write_node_props "$n"
        if port_open "$(broker_port "$n")"; then
            log "node $n already running on $HOST:$(broker_port "$n")"
            continue
        fi
        log "starting node $n on $HOST:$(broker_port "$n") (controller $(controller_port "$n"))"
        node_kafka_sh "$n" start >"$(node_dir "$n")/start.out" 2>&1 &
        pids+=("$!:$n")
        if ! jars_resolved; then
            # The first node resolves the shared jar cache: the others wait, not race it.
            while ! jars_resolved && kill -0 "$!" 2>/dev/null; do sleep 1; done
        fi
    done
    local entry
    for entry in "${pids[@]}"; do
        if ! wait "${entry%%:*}"; then
            n="${entry##*:}"
            echo "----- node $n: $(node_dir "$n")/start.out -----" >&2
            tail -n 40 "$(node_dir "$n")/start.out" >&2 || true
            failed=1
        fi
    done
    ((failed == 0)) || die "a node did not start (output above); '$0 stop' stops the others"
    wait_for_brokers
    log "cluster up in $((SECONDS - started))s; bootstrap $(bootstrap)"
}

cmd_stop() {
    local n pids=()
    for n in "${NODES[@]}"; do
        [[ -d "$(node_dir "$n")" ]] || continue
        node_kafka_sh "$n" stop &
        pids+=("$!")
    done
    local pid
    for pid in "${pids[@]}"; do wait "$pid" || true; done
    log "cluster stopped"
}

cmd_status() {
    local n down=0
    for n in "${NODES[@]}"; do
        if port_open "$(broker_port "$n")"; then
            log "node $n up on $HOST:$(broker_port "$n")"
        else
            log "node $n down ($HOST:$(broker_port "$n"))"
            down=1
        fi
    done
    return "$down"
}

cmd_kill() {
    check_node "$1"
    local pid_file pid
    pid_file="$(node_dir "$1")/kafka.pid"
    pid="$(cat "$pid_file" 2>/dev/null || true)"
    [[ "$pid" =~ ^[0-9]+$ ]] && kill -0 "$pid" 2>/dev/null \
        || die "node $1 is not running (no live pid in $pid_file)"
    grep -q "$(node_dir "$1")/server.properties" < <(tr '\0' ' ' <"/proc/$pid/cmdline") \
        || die "pid $pid is not node $1's broker"
    kill -KILL "$pid"
    while kill -0 "$pid" 2>/dev/null; do sleep 0.1; done
    rm -f "$pid_file"
    log "node $1 (pid $pid) SIGKILLed"
}

cmd_start_node() {
    check_node "$1"
    write_node_props "$1"
    node_kafka_sh "$1" start
    wait_for_brokers
}

cmd_reset() {
    cmd_stop
    log "deleting $CLUSTER_DIR (keeping $KAFKA_LIB_DIR)"
    rm -rf "$CLUSTER_DIR"
}

case "${1:-}" in
    start) cmd_start ;;
    stop) cmd_stop ;;
    status) cmd_status ;;
    reset) cmd_reset ;;
    kill) cmd_kill "${2:-}" ;;
    start-node) cmd_start_node "${2:-}" ;;
    bootstrap) bootstrap ;;
    *)
        echo "usage: $0 {start|stop|status|reset|kill N|start-node N|bootstrap}" >&2
        exit 2
        ;;
esac

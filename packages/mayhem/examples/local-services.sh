#!/bin/sh
# A few local "services" (long sleeps, one per name) for trying mayhem's command executor on this
# machine; see "Running it for real" in the README.
#
#   local-services.sh start   DIR NAME...   start one service per NAME (pid in DIR/NAME.pid)
#   local-services.sh restart DIR NAME      stop NAME's process, start a new one; exit 3 if unknown
#   local-services.sh status  DIR           NAME, pid, running?, restarts so far
#   local-services.sh stop    DIR           stop them all
#
# Each service is detached into its own session (setsid), so it outlives the restart command that
# started it, and its output goes nowhere (it must not hold the command's stderr open).
set -eu

usage() { echo "usage: $0 start|restart|status|stop DIR [NAME...]" >&2; exit 2; }
[ $# -ge 2 ] || usage
cmd=$1 dir=$2
shift 2

# Whether a pid is a live process (an exited one waiting to be reaped, a zombie, is not).
running() {
  s=$(ps -o stat= -p "$1" 2>/dev/null) || return 1
  [ "${s#Z}" = "$s" ]
}

launch() {
  setsid sleep 1000000 </dev/null >/dev/null 2>&1 &
  echo $! >"$dir/$1.pid"
}

case $cmd in
  start)
    mkdir -p "$dir"
    for name in "$@"; do launch "$name"; done
    ;;
  restart)
    [ $# -eq 1 ] || usage
    name=$1
    if [ ! -f "$dir/$name.pid" ]; then
      echo "no service named $name in $dir" >&2
      exit 3
    fi
    old=$(cat "$dir/$name.pid")
    kill "$old" 2>/dev/null || true
    # Wait (up to 5 s) for the old process to be gone before starting the new one.
    i=0
    while running "$old" && [ $i -lt 50 ]; do sleep 0.1; i=$((i + 1)); done
    if running "$old"; then
      echo "$name (pid $old) did not stop within 5 s" >&2
      exit 1
    fi
    launch "$name"
    echo "$(date +%H:%M:%S) $name $old -> $(cat "$dir/$name.pid")" >>"$dir/restarts.log"
    ;;
  status)
    for f in "$dir"/*.pid; do
      [ -e "$f" ] || continue
      name=$(basename "$f" .pid) pid=$(cat "$f")
      state=stopped
      running "$pid" && state=running
      n=$(grep -c " $name " "$dir/restarts.log" 2>/dev/null || true)
      echo "$name pid $pid $state, restarted ${n:-0} times"
    done
    ;;
  stop)
    for f in "$dir"/*.pid; do
      [ -e "$f" ] || continue
      kill "$(cat "$f")" 2>/dev/null || true
      rm -f "$f"
    done
    ;;
  *) usage ;;
esac

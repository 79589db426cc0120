#!/bin/sh
# Run APP_COMMAND in its own session (so vipfarm's command timeouts never touch it),
# output appended to APP_LOG, pid in APP_PIDFILE.
# alive PID: running (a zombie, dead and waiting for its reaper, does not count)
alive() { st=$(sed 's/.*) //' "/proc/${1:-0}/stat" 2>/dev/null | cut -c1); [ -n "$1" ] && [ -n "$st" ] && [ "$st" != Z ]; }
if [ -s "$APP_PIDFILE" ] && alive "$(cat "$APP_PIDFILE")"; then
  echo "already running (pid $(cat "$APP_PIDFILE"))"
  exit 0
fi
cd "$APP_DIR" || exit 1
setsid sh -c "exec $APP_COMMAND" >>"$APP_LOG" 2>&1 </dev/null &
echo $! >"$APP_PIDFILE"
sleep 0.2
if ! alive "$(cat "$APP_PIDFILE")"; then
  echo "exited at once:"; tail -n 5 "$APP_LOG"
  exit 1
fi
echo "started pid $(cat "$APP_PIDFILE")"

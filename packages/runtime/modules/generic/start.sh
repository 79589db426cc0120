#!/bin/sh
# Run APP_COMMAND in its own session (so vipfarm's command timeouts never touch it),
# output appended to APP_LOG, pid in APP_PIDFILE.
if [ -s "$APP_PIDFILE" ] && kill -0 "$(cat "$APP_PIDFILE")" 2>/dev/null; then
  echo "already running (pid $(cat "$APP_PIDFILE"))"
  exit 0
fi
cd "$APP_DIR" || exit 1
setsid sh -c "exec $APP_COMMAND" >>"$APP_LOG" 2>&1 </dev/null &
echo $! >"$APP_PIDFILE"
sleep 0.2
if ! kill -0 "$(cat "$APP_PIDFILE")" 2>/dev/null; then
  echo "exited at once:"; tail -n 5 "$APP_LOG"
  exit 1
fi
echo "started pid $(cat "$APP_PIDFILE")"

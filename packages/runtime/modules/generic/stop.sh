#!/bin/sh
# SIGTERM the application, wait until it is gone.
# alive PID: running (a zombie, dead and waiting for its reaper, does not count)
alive() { st=$(sed 's/.*) //' "/proc/${1:-0}/stat" 2>/dev/null | cut -c1); [ -n "$1" ] && [ -n "$st" ] && [ "$st" != Z ]; }
pid=$(cat "$APP_PIDFILE" 2>/dev/null) || { echo "no pid file: not running"; exit 0; }
alive "$pid" || { echo "pid $pid not running"; rm -f "$APP_PIDFILE"; exit 0; }
kill -TERM "$pid"
while alive "$pid"; do sleep 0.05; done
rm -f "$APP_PIDFILE"
echo "stopped pid $pid"

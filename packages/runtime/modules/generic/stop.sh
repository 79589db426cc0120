#!/bin/sh
# SIGTERM the application, wait until it is gone.
pid=$(cat "$APP_PIDFILE" 2>/dev/null) || { echo "no pid file: not running"; exit 0; }
kill -0 "$pid" 2>/dev/null || { echo "pid $pid not running"; rm -f "$APP_PIDFILE"; exit 0; }
kill -TERM "$pid"
# a zombie (dead, waiting for its reaper) counts as gone
alive() { [ -r "/proc/$1/stat" ] && [ "$(sed 's/.*) //' "/proc/$1/stat" | cut -c1)" != Z ]; }
while alive "$pid"; do sleep 0.05; done
rm -f "$APP_PIDFILE"
echo "stopped pid $pid"

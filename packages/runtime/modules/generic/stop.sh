#!/bin/sh
# SIGTERM the application, wait until it is gone.
pid=$(cat "$APP_PIDFILE" 2>/dev/null) || { echo "no pid file: not running"; exit 0; }
kill -0 "$pid" 2>/dev/null || { echo "pid $pid not running"; rm -f "$APP_PIDFILE"; exit 0; }
kill -TERM "$pid"
while kill -0 "$pid" 2>/dev/null; do sleep 0.1; done
rm -f "$APP_PIDFILE"
echo "stopped pid $pid"

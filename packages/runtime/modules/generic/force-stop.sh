#!/bin/sh
# SIGKILL the application's whole session/process group.
pid=$(cat "$APP_PIDFILE" 2>/dev/null) || exit 0
kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null
rm -f "$APP_PIDFILE"
echo "killed pid $pid"

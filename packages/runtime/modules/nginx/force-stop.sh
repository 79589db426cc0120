#!/bin/sh
# Forced stop: SIGKILL the master and its workers.
pid=$(cat "$NGINX_PID" 2>/dev/null) || exit 0
pkill -KILL -P "$pid" 2>/dev/null
kill -KILL "$pid" 2>/dev/null
rm -f "$NGINX_PID"
echo "nginx $pid killed"

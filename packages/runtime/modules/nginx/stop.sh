#!/bin/sh
# Graceful stop: SIGQUIT to the master, then wait until it is gone.
pid=$(cat "$NGINX_PID" 2>/dev/null) || { echo "no pid file: not running"; exit 0; }
kill -0 "$pid" 2>/dev/null || { echo "pid $pid not running"; exit 0; }
kill -QUIT "$pid"
while kill -0 "$pid" 2>/dev/null; do sleep 0.1; done
echo "nginx $pid stopped"

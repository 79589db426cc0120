#!/bin/sh
# Graceful stop, then wait until the parent is gone.
. ./env.sh
pid=$(cat "$APACHE_PID" 2>/dev/null) || { echo "no pid file: not running"; exit 0; }
kill -0 "$pid" 2>/dev/null || { echo "pid $pid not running"; exit 0; }
"$APACHE" -f "$APACHE_CONF" -k graceful-stop || kill -WINCH "$pid"
while kill -0 "$pid" 2>/dev/null; do sleep 0.1; done
echo "apache2 $pid stopped"

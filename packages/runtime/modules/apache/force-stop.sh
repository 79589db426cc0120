#!/bin/sh
# Forced stop: SIGKILL the parent and its children.
pid=$(cat "$APACHE_PID" 2>/dev/null) || exit 0
pkill -KILL -P "$pid" 2>/dev/null
kill -KILL "$pid" 2>/dev/null
rm -f "$APACHE_PID"
echo "apache2 $pid killed"

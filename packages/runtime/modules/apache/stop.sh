#!/bin/sh
# Graceful stop, then wait until the parent is gone.
. ./env.sh
pid=$(cat "$APACHE_PID" 2>/dev/null) || { echo "no pid file: not running"; exit 0; }
kill -0 "$pid" 2>/dev/null || { echo "pid $pid not running"; exit 0; }
"$APACHE" -f "$APACHE_CONF" -k graceful-stop || kill -WINCH "$pid"
# a zombie (dead, waiting for its reaper) counts as gone
alive() { [ -r "/proc/$1/stat" ] && [ "$(sed 's/.*) //' "/proc/$1/stat" | cut -c1)" != Z ]; }
while alive "$pid"; do sleep 0.05; done
echo "apache2 $pid stopped"

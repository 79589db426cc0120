#!/bin/sh
# Graceful stop, then wait until the parent is gone.
# alive PID: running (a zombie, dead and waiting for its reaper, does not count)
alive() { st=$(sed 's/.*) //' "/proc/${1:-0}/stat" 2>/dev/null | cut -c1); [ -n "$1" ] && [ -n "$st" ] && [ "$st" != Z ]; }
. ./env.sh
pid=$(cat "$APACHE_PID" 2>/dev/null) || { echo "no pid file: not running"; exit 0; }
alive "$pid" || { echo "pid $pid not running"; exit 0; }
"$APACHE_BIN" -f "$APACHE_CONF" -k graceful-stop || kill -WINCH "$pid"
while alive "$pid"; do sleep 0.05; done
echo "apache2 $pid stopped"

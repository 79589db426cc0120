#!/bin/sh
# Graceful stop: SIGQUIT to the master, then wait until it is gone.
# alive PID: running (a zombie, dead and waiting for its reaper, does not count)
alive() { st=$(sed 's/.*) //' "/proc/${1:-0}/stat" 2>/dev/null | cut -c1); [ -n "$1" ] && [ -n "$st" ] && [ "$st" != Z ]; }
pid=$(cat "$NGINX_PID" 2>/dev/null) || { echo "no pid file: not running"; exit 0; }
alive "$pid" || { echo "pid $pid not running"; exit 0; }
kill -QUIT "$pid"
while alive "$pid"; do sleep 0.05; done
echo "nginx $pid stopped"

#!/bin/sh
# Graceful stop: SIGQUIT to the master, then wait until it is gone.
pid=$(cat "$NGINX_PID" 2>/dev/null) || { echo "no pid file: not running"; exit 0; }
kill -0 "$pid" 2>/dev/null || { echo "pid $pid not running"; exit 0; }
kill -QUIT "$pid"
# a zombie (dead, waiting for its reaper) counts as gone
alive() { [ -r "/proc/$1/stat" ] && [ "$(sed 's/.*) //' "/proc/$1/stat" | cut -c1)" != Z ]; }
while alive "$pid"; do sleep 0.05; done
echo "nginx $pid stopped"

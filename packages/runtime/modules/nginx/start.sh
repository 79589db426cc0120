#!/bin/sh
# Start nginx (it daemonizes). Fails, with nginx's first error as the last line, if the
# configuration is broken.
# alive PID: running (a zombie, dead and waiting for its reaper, does not count; the state is
# read once: a process reaped between two reads must not look alive)
alive() { st=$(sed 's/.*) //' "/proc/${1:-0}/stat" 2>/dev/null | cut -c1); [ -n "$1" ] && [ -n "$st" ] && [ "$st" != Z ]; }
if [ -s "$NGINX_PID" ] && alive "$(cat "$NGINX_PID")"; then
  echo "nginx already running (pid $(cat "$NGINX_PID"))"
  exit 0
fi
out=$("$NGINX_BIN" -t -q -c "$NGINX_CONF" 2>&1) || { echo "$out"; echo "$out" | grep -m1 -E 'emerg|alert|crit' ; exit 1; }
exec "$NGINX_BIN" -c "$NGINX_CONF"

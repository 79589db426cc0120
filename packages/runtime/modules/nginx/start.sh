#!/bin/sh
# Start nginx (it daemonizes). Fails, with nginx's message, if the configuration is broken.
set -e
if [ -s "$NGINX_PID" ] && kill -0 "$(cat "$NGINX_PID")" 2>/dev/null; then
  echo "nginx already running (pid $(cat "$NGINX_PID"))"
  exit 0
fi
"$NGINX" -t -q -c "$NGINX_CONF"
exec "$NGINX" -c "$NGINX_CONF"

#!/bin/sh
# Start apache2 (it daemonizes). Fails, with apache's message, if the configuration is broken.
set -e
. ./env.sh
if [ -s "$APACHE_PID" ] && kill -0 "$(cat "$APACHE_PID")" 2>/dev/null; then
  echo "apache2 already running (pid $(cat "$APACHE_PID"))"
  exit 0
fi
rm -f "$APACHE_PID"
out=$("$APACHE" -t -f "$APACHE_CONF" 2>&1) || { echo "$out"; exit 1; }
exec "$APACHE" -f "$APACHE_CONF" -k start

#!/bin/sh
# Start apache2 (it daemonizes). Fails, with apache's message, if the configuration is broken.
# alive PID: running (a zombie, dead and waiting for its reaper, does not count)
alive() { st=$(sed 's/.*) //' "/proc/${1:-0}/stat" 2>/dev/null | cut -c1); [ -n "$1" ] && [ -n "$st" ] && [ "$st" != Z ]; }
set -e
. ./env.sh
if [ -s "$APACHE_PID" ] && alive "$(cat "$APACHE_PID")"; then
  echo "apache2 already running (pid $(cat "$APACHE_PID"))"
  exit 0
fi
rm -f "$APACHE_PID"
out=$("$APACHE_BIN" -t -f "$APACHE_CONF" 2>&1) || { echo "$out"; exit 1; }
"$APACHE_BIN" -f "$APACHE_CONF" -k start || { rc=$?; echo "apache2 -k start failed (exit $rc): see its ErrorLog"; exit $rc; }

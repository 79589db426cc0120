#!/bin/sh
# Graceful reload after a configuration test.
set -e
. ./env.sh
"$APACHE_BIN" -t -f "$APACHE_CONF"
exec "$APACHE_BIN" -f "$APACHE_CONF" -k graceful

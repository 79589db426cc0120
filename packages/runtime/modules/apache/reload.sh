#!/bin/sh
# Graceful reload after a configuration test.
set -e
. ./env.sh
"$APACHE" -t -f "$APACHE_CONF"
exec "$APACHE" -f "$APACHE_CONF" -k graceful

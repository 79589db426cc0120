# Sourced by the scripts: Debian's envvars (APACHE_RUN_USER, APACHE_RUN_DIR, ...).
if [ -f "$APACHE_ENVVARS" ]; then . "$APACHE_ENVVARS"; fi
mkdir -p "${APACHE_RUN_DIR:-/run/apache2}" "${APACHE_LOCK_DIR:-/run/lock/apache2}" "$(dirname "$APACHE_PID")" 2>/dev/null

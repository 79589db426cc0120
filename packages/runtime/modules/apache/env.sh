# Sourced by the scripts: Debian's envvars (APACHE_RUN_USER, APACHE_RUN_DIR, ...) when it exists.
if [ -f "$APACHE_ENVVARS" ]; then
  . "$APACHE_ENVVARS"
  mkdir -p "${APACHE_RUN_DIR:-/run/apache2}" "${APACHE_LOCK_DIR:-/run/lock/apache2}" "${APACHE_LOG_DIR:-/var/log/apache2}"
fi
mkdir -p "$(dirname "$APACHE_PID")"

#!/bin/sh
# The file system and capabilities of a systemd unit, for a test (see unit.ts, sandboxArgs).
# Run inside `unshare --mount --propagation private` as root:
#   sandbox.sh CAPS RW_PATHS RUNTIME_DIRS UMASK -- COMMAND...
# CAPS is setpriv's --bounding-set list (-all,+net_admin,...); RW_PATHS and RUNTIME_DIRS are
# space-separated. ProtectSystem=strict: every mount read-only but /proc, /sys, /dev;
# PrivateTmp: fresh /tmp and /var/tmp; ProtectHome=yes: /home, /root, /run/user empty and
# read-only; RuntimeDirectory and ReadWritePaths writable (a ReadWritePaths entry that
# does not exist is an error unless it starts with "-", as in systemd).
set -eu
caps=$1 rw=$2 runtime=$3 mask=$4
shift 5
for d in $runtime; do mkdir -p "$d"; done
mount -t tmpfs -o mode=1777 tmpfs /tmp
mount -t tmpfs -o mode=1777 tmpfs /var/tmp
for d in /home /root /run/user; do
  if [ -d "$d" ]; then mount -t tmpfs -o ro,mode=0755 tmpfs "$d"; fi
done
awk '{print $5}' /proc/self/mountinfo | sort -u | while read -r m; do
  case "$m" in /proc|/proc/*|/sys|/sys/*|/dev|/dev/*|/tmp|/var/tmp) continue ;; esac
  mount -o remount,bind,ro "$m"
done
for p in $runtime $rw; do
  case "$p" in
    -*) p=${p#-}; [ -e "$p" ] || continue ;;
    *) [ -e "$p" ] || { echo "sandbox: ReadWritePaths=$p does not exist" >&2; exit 1; } ;;
  esac
  mount --bind "$p" "$p"
  mount -o remount,bind,rw "$p"
done
umask "$mask"
exec setpriv --bounding-set "$caps" --inh-caps -all --ambient-caps -all --no-new-privs "$@"

#!/bin/sh
# Rebuild the committed BPF objects (users of the package need no clang).
# Run from anywhere: packages/filter-xdp/scripts/build-bpf.sh
set -eu
cd "$(dirname "$0")/../bpf"
CLANG=${CLANG:-clang}
for prog in vipfarm floor pass; do
  "$CLANG" -O2 -g -target bpf -Wall -Werror -I/usr/include/x86_64-linux-gnu -c "$prog.bpf.c" -o "$prog.bpf.o"
done
ls -l ./*.bpf.o

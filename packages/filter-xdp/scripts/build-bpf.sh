#!/bin/sh
# Rebuild the committed BPF objects (users of the package need no clang).
# Run from anywhere: packages/filter-xdp/scripts/build-bpf.sh
# The committed objects are built with clang 19 (used when installed; Debian 12: apt-get
# install clang-19; CLANG=... overrides): it spills less than clang 14 in the fast paths. -mcpu=v3: 32-bit ALU and jumps
# (the 32-bit jhash rotates are 3 instructions instead of 5); any kernel since 5.1 runs it.
set -eu
cd "$(dirname "$0")/../bpf"
CLANG=${CLANG:-$(command -v clang-19 || echo clang)}
for prog in vipfarm floor pass; do
  "$CLANG" -O2 -g -target bpf -mcpu=v3 -Wall -Werror -I/usr/include/x86_64-linux-gnu -c "$prog.bpf.c" -o "$prog.bpf.o"
done
ls -l ./*.bpf.o

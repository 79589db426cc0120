#!/bin/sh
# Build the vipfarm Debian package: dist/vipfarm_VERSION_ARCH.deb (dpkg-deb; no npm dependency).
#   sh scripts/build-deb.sh            (after npm ci: the bundle is built here, into the package)
#   sudo dpkg -i dist/vipfarm_*.deb    (or: sudo apt install ./dist/vipfarm_*.deb)
# Layout: /usr/bin/farm runs /usr/lib/vipfarm/farm.mjs (the entry point: the bundle with its
# V8 code cache, see scripts/build.mjs; its BPF objects, modules,
# scenarios and audit page in the repository's relative layout, koffi's native addon);
# /lib/systemd/system/vipfarm.service; /etc/vipfarm/farm.yaml.example (a conffile);
# /usr/share/doc/vipfarm/ (README, the application drop-ins as examples: a drop-in under
# /lib/systemd/system/vipfarm.service.d/ would always be active).
set -eu
cd "$(dirname "$0")/.."
ROOT=$(pwd)
VERSION=$(node -p 'require("./package.json").version')
ARCH=$(dpkg --print-architecture)
case "$ARCH" in
  amd64) NODE_ARCH=x64 ;;
  arm64) NODE_ARCH=arm64 ;;
  armhf) NODE_ARCH=arm ;;
  i386) NODE_ARCH=ia32 ;;
  riscv64) NODE_ARCH=riscv64 ;;
  *) echo "build-deb: no koffi build for architecture $ARCH" >&2; exit 1 ;;
esac
KOFFI_NATIVE="node_modules/@koromix/koffi-linux-$NODE_ARCH"
[ -d node_modules/koffi ] && [ -d "$KOFFI_NATIVE" ] || { echo "build-deb: $KOFFI_NATIVE missing: run npm ci first" >&2; exit 1; }

OUT="$ROOT/dist/vipfarm_${VERSION}_${ARCH}.deb"
STAGE=$(mktemp -d /tmp/vipfarm-deb.XXXXXX)
trap 'rm -rf "$STAGE"' EXIT
LIB="$STAGE/usr/lib/vipfarm"
DOC="$STAGE/usr/share/doc/vipfarm"

# koffi (external to the bundle: a native addon), only what it loads at run time; first: the
# build runs the bundle once (its code cache) and the bundle loads koffi
mkdir -p "$LIB/node_modules/koffi" "$LIB/node_modules/@koromix"
cp -r node_modules/koffi/package.json node_modules/koffi/index.js node_modules/koffi/index.cjs node_modules/koffi/indirect.js node_modules/koffi/indirect.cjs node_modules/koffi/src node_modules/koffi/lib node_modules/koffi/LICENSE.txt "$LIB/node_modules/koffi/"
cp -r "$KOFFI_NATIVE" "$LIB/node_modules/@koromix/"
rm -rf "$LIB/node_modules/@koromix/koffi-linux-$NODE_ARCH/musl_$NODE_ARCH"
# the module sources the C build reads are not needed at run time
find "$LIB/node_modules/koffi/src" -type f ! -name '*.js' ! -name '*.cjs' ! -name '*.json' -delete
find "$LIB/node_modules/koffi/src" -type d -empty -delete
node scripts/build.mjs --out "$LIB"

install -D -m 0755 packaging/deb/farm "$STAGE/usr/bin/farm"
install -D -m 0644 packaging/vipfarm.service "$STAGE/lib/systemd/system/vipfarm.service"
install -D -m 0644 packaging/farm.yaml.example "$STAGE/etc/vipfarm/farm.yaml.example"
install -D -m 0644 README.md "$DOC/README.md"
for f in packaging/vipfarm.service.d/*.conf; do
  install -D -m 0644 "$f" "$DOC/examples/vipfarm.service.d/$(basename "$f")"
done
printf 'vipfarm %s, built from %s\n' "$VERSION" "$(git rev-parse --short HEAD 2>/dev/null || echo unknown)" >"$DOC/BUILD"

mkdir -p "$STAGE/DEBIAN"
for s in postinst prerm postrm; do install -m 0755 "packaging/deb/$s" "$STAGE/DEBIAN/$s"; done
echo /etc/vipfarm/farm.yaml.example >"$STAGE/DEBIAN/conffiles"
SIZE=$(du -sk --exclude=DEBIAN "$STAGE" | cut -f1)
sed -e "s/@VERSION@/$VERSION/" -e "s/@ARCH@/$ARCH/" -e "s/@SIZE@/$SIZE/" packaging/deb/control.in >"$STAGE/DEBIAN/control"
find "$STAGE" -type d -exec chmod 0755 {} +
mkdir -p dist
dpkg-deb --root-owner-group -Zxz --build "$STAGE" "$OUT" >/dev/null
echo "$OUT"

#!/bin/sh
# dist/annotator-app (the PyInstaller folder) -> dist/annotator-linux-x86_64.tar.gz with the
# install and uninstall scripts, the desktop entry and the icon.
set -eu
dist=${1:-dist}
here=$(cd "$(dirname "$0")" && pwd)
stage="$dist/annotator"
rm -rf "$stage"
mkdir -p "$stage"
# the app folder (over a GB) is moved into the archive's folder and back, not copied
mv "$dist/annotator-app" "$stage/annotator-app"
trap 'mv "$stage/annotator-app" "$dist/annotator-app" && rm -rf "$stage"' EXIT
cp "$here/install.sh" "$here/uninstall.sh" "$here/annotator.desktop" "$stage/"
cp "$here/../../resources/icon.svg" "$stage/annotator.svg"
# gzip on every core where pigz is installed (the same format, in about half the time on two)
if command -v pigz >/dev/null 2>&1; then gzip=pigz; else gzip=gzip; fi
tar -C "$dist" --use-compress-program="$gzip" -cf "$dist/annotator-linux-$(uname -m).tar.gz" annotator
echo "$dist/annotator-linux-$(uname -m).tar.gz"

#!/bin/sh
# dist/annotator-app (the PyInstaller folder) -> dist/annotator-linux-x86_64.tar.gz with the
# install and uninstall scripts, the desktop entry and the icon.
set -eu
dist=${1:-dist}
here=$(cd "$(dirname "$0")" && pwd)
stage="$dist/annotator"
rm -rf "$stage"
mkdir -p "$stage"
cp -a "$dist/annotator-app" "$stage/annotator-app"
cp "$here/install.sh" "$here/uninstall.sh" "$here/annotator.desktop" "$stage/"
cp "$here/../../resources/icon.svg" "$stage/annotator.svg"
tar -C "$dist" -czf "$dist/annotator-linux-$(uname -m).tar.gz" annotator
rm -rf "$stage"
echo "$dist/annotator-linux-$(uname -m).tar.gz"

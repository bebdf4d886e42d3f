#!/bin/sh
# Install Annotator for this user (no root): the app folder under ~/.local/share/annotator-app,
# a desktop menu entry and its icon. Run from the unpacked archive: ./install.sh
set -eu
here=$(cd "$(dirname "$0")" && pwd)
data=${XDG_DATA_HOME:-$HOME/.local/share}
target="$data/annotator-app"
if [ ! -x "$here/annotator-app/annotator-app" ]; then
    echo "install.sh: annotator-app/ is not beside this script (unpack the whole archive first)" >&2
    exit 1
fi
rm -rf "$target.new"
mkdir -p "$data/applications" "$data/icons/hicolor/scalable/apps"
cp -a "$here/annotator-app" "$target.new"
rm -rf "$target"
mv "$target.new" "$target"
cp "$here/uninstall.sh" "$target/uninstall.sh"
cp "$here/annotator.svg" "$data/icons/hicolor/scalable/apps/annotator.svg"
sed "s|@APPDIR@|$target|" "$here/annotator.desktop" > "$data/applications/annotator.desktop"
chmod 644 "$data/applications/annotator.desktop"
command -v update-desktop-database >/dev/null 2>&1 && update-desktop-database "$data/applications" || true
echo "Annotator installed in $target; it is in the desktop menu (Graphics / Science)."
echo "To remove it: $target/uninstall.sh"

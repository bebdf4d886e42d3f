#!/bin/sh
# Remove what install.sh put in place. Labels, settings and models in the user folders stay.
set -eu
data=${XDG_DATA_HOME:-$HOME/.local/share}
rm -rf "$data/annotator-app"
rm -f "$data/applications/annotator.desktop" "$data/icons/hicolor/scalable/apps/annotator.svg"
command -v update-desktop-database >/dev/null 2>&1 && update-desktop-database "$data/applications" || true
echo "Annotator removed (your labels, settings and models are kept)."

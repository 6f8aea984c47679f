# Sourced by the tests that drive amld from Node.js (tests/ide, tests/web).
#
# npm_ci DIR MODULES NAME: installs the pinned packages of DIR/package-lock.json
# with `npm ci` into MODULES, unless MODULES already holds that lock file's
# install; npm's cache makes later installs offline. A failed install leaves
# no MODULES behind (the next run tries again). NAME starts the error message.
npm_ci() {
  local dir=$1 modules=$2 name=$3
  cmp -s "$dir/package-lock.json" "$modules/package-lock.json" && return 0
  rm -rf "$modules" && mkdir -p "$modules"
  cp "$dir/package.json" "$dir/package-lock.json" "$modules/"
  (cd "$modules" && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error) || {
    rm -rf "$modules"
    echo "$name: npm ci failed (offline? it needs the npm registry once)" >&2
    exit 1
  }
}

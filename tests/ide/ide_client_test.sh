#!/usr/bin/env bash
# ctest ide_client_test: an IDE plugin's view of amld, from a client nobody
# here wrote (tests/ide/ide_client.js: grpc-js and server reflection).
#
#   tests/ide/ide_client_test.sh BUILD_DIR
#
# Installs Node.js from Debian when it is missing (as root), the pinned npm
# packages of package-lock.json with `npm ci` into BUILD_DIR/tests/ide (npm's
# cache makes later runs offline), starts a private amld on a temporary
# socket, runs the client against it and stops the daemon.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
build=$(realpath "$1")

if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  [[ $(id -u) -eq 0 ]] || { echo "ide_client_test: needs node and npm: apt-get install nodejs npm" >&2; exit 1; }
  DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 install -y -qq \
    --no-install-recommends nodejs npm >/dev/null
fi

modules=$build/tests/ide/npm
source "$here/../testing/npm_ci.sh"
npm_ci "$here" "$modules" ide_client_test

tmp=$(mktemp -d /tmp/amld-ide.XXXXXX)
export AMLD_SOCKET=$tmp/amld.sock AMLD_DATA_DIR=$tmp/data
cleanup() { "$build/bin/aml" daemon stop >/dev/null 2>&1 || true; rm -rf "$tmp"; }
trap cleanup EXIT
"$build/bin/aml" daemon start >/dev/null
NODE_PATH=$modules/node_modules node "$here/ide_client.js" "$AMLD_SOCKET"

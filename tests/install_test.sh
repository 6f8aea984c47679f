#!/usr/bin/env bash
# `make install` into a temp prefix: every file in its place, the units
# naming the installed amld and passing `systemd-analyze verify`, the
# completion loading in bash, the man page rendering; with DESTDIR, nothing
# inside the files names the staging folder.
#   tests/install_test.sh SOURCE_DIR BUILD_DIR
set -euo pipefail
src=$1
build=$2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "install_test: $*" >&2; exit 1; }

prefix=$tmp/prefix
make -s -C "$src" install BUILD_DIR="$build" PREFIX="$prefix" >/dev/null
for f in bin/amld bin/aml bin/amld-shim bin/amld-launch lib/systemd/user/amld.service \
    lib/systemd/user/amld.socket share/bash-completion/completions/aml \
    share/zsh/site-functions/_aml share/man/man1/aml.1 share/amld/amld.yaml.example; do
  [ -s "$prefix/$f" ] || fail "missing $f"
done
grep -q "^ExecStart=$prefix/bin/amld " "$prefix/lib/systemd/user/amld.service" ||
  fail "ExecStart does not name the installed amld: $(grep ExecStart "$prefix/lib/systemd/user/amld.service")"
if command -v systemd-analyze >/dev/null; then
  mkdir -m 0700 "$tmp/runtime"
  out=$(XDG_RUNTIME_DIR=$tmp/runtime systemd-analyze --user verify \
    "$prefix/lib/systemd/user/amld.socket" "$prefix/lib/systemd/user/amld.service" 2>&1) ||
    fail "systemd-analyze verify: $out"
  [ -z "$out" ] || fail "systemd-analyze verify said: $out"
fi
# The completion loads in bash and completes commands from the installed aml.
words=$(PATH=$prefix/bin:$PATH bash -c '
  source "$1"
  COMP_WORDS=(aml run re); COMP_CWORD=2; _aml; printf "%s\n" "${COMPREPLY[@]}"' _ \
  "$prefix/share/bash-completion/completions/aml")
[ "$words" = "restart" ] || fail "bash completion of 'aml run re' gave: $words"
if command -v man >/dev/null; then
  man -l "$prefix/share/man/man1/aml.1" 2>/dev/null | grep -q "aml run submit" ||
    fail "the man page does not render the commands"
fi
grep -q '^\.SS aml run submit' "$prefix/share/man/man1/aml.1" || fail "no 'aml run submit' in aml.1"

# Staged for a package: paths inside the files are the final ones.
make -s -C "$src" install BUILD_DIR="$build" PREFIX=/usr DESTDIR="$tmp/stage" >/dev/null
[ -x "$tmp/stage/usr/bin/amld" ] || fail "DESTDIR install lacks usr/bin/amld"
grep -q '^ExecStart=/usr/bin/amld ' "$tmp/stage/usr/lib/systemd/user/amld.service" ||
  fail "staged ExecStart: $(grep ExecStart "$tmp/stage/usr/lib/systemd/user/amld.service")"
if grep -rq "$tmp/stage" "$tmp/stage/usr/lib" "$tmp/stage/usr/share"; then
  fail "a staged file names the DESTDIR"
fi
# A missing build is refused with what to do.
if out=$(make -s -C "$src" install BUILD_DIR="$tmp/nothing" PREFIX="$tmp/p2" 2>&1); then
  fail "install without a build succeeded"
fi
grep -q "make build" <<<"$out" || fail "no hint to build first: $out"
echo "install_test: ok"

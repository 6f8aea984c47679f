# What scripts/test-env/slurm and scripts/test-env/sshd share: sourced, not run.
# Expects log() and die() to be defined by the sourcing script.

# Files these scripts create are for other users too (munge, amldtest).
umask 022

# The pid in a pid file, if that process still runs.
live_pid() {
  local f=$1 pid
  [[ -s $f ]] || return 1
  pid=$(<"$f")
  [[ $pid =~ ^[0-9]+$ ]] && kill -0 "$pid" 2>/dev/null && echo "$pid"
}

free_port() {
  /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# Creates the state folder STATE_DIR (and missing parents) owned by root,
# 0755. It must not sit below the clone or the build folder: the daemons'
# own users (munge, the SSH test user) read from it, and a clone may live in
# a folder only its owner can enter (/root/src). ctest passes
# /var/tmp/amld-test-env-<hash of the build folder>/{slurm,sshd}.
make_state_dir() {
  local state=$1
  install -d -m 0755 "$state"
  [[ ! -L $state && $(stat -c %u "$state") == 0 ]] ||
    die "$state is not a folder owned by root; remove it and try again"
  chmod 0755 "$state"
}

# `runuser -u USER -- test -r PATH`, failing with the fix to apply.
check_reachable() {
  local user=$1 path=$2
  runuser -u "$user" -- test -r "$path" ||
    die "the user $user cannot read $path: its folders must be searchable by others (chmod o+x); keep the state outside a private folder such as /root"
}

# Removes STATE_DIR, and its parent when that is an empty per-build folder
# (amld-test-env-*) which the other environment no longer uses.
remove_state_dir() {
  local state=$1 parent
  rm -rf "$state"
  parent=$(dirname "$state")
  if [[ $(basename "$parent") == amld-test-env-* ]]; then
    rmdir "$parent" 2>/dev/null || true
  fi
}

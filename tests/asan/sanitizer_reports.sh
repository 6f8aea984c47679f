#!/usr/bin/env bash
# The sanitizer reports of `make test-asan` and `make test-asan-ci`.
# Their tests run with ASAN_OPTIONS/UBSAN_OPTIONS log_path=DIR/report (the
# Makefile sets them), so that a report of any process the tests start — a
# daemon without a terminal, a shim as another Unix user, an `aml` under a
# Python test — lands in DIR/report.<pid> instead of a stderr nobody reads.
#   sanitizer_reports.sh clear DIR SUPP  empty DIR (mode 1777: runs of the
#       multi-user tests write as their users) and copy the LeakSanitizer
#       suppressions SUPP into it, where those users can read them too
#   sanitizer_reports.sh check DIR  print every report; fail if there is one
set -euo pipefail
mode=$1 dir=$2
case "$mode" in
  clear)
    rm -rf "$dir"
    mkdir -p "$dir"
    chmod 1777 "$dir"
    install -m 0644 "$3" "$dir/lsan.supp"
    ;;
  check)
    shopt -s nullglob
    reports=("$dir"/report.*)
    if ((${#reports[@]} == 0)); then
      echo "sanitizer reports: none"
      exit 0
    fi
    for r in "${reports[@]}"; do
      echo "==== $r"
      cat "$r"
    done
    echo "sanitizer reports: ${#reports[@]} in $dir (each file is named by the pid of the process that wrote it)" >&2
    exit 1
    ;;
  *)
    echo "usage: $0 clear DIR SUPPRESSIONS | check DIR" >&2
    exit 2
    ;;
esac

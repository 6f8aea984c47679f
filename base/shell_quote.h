// Quoting for a POSIX shell: the one ShellQuote of the codebase, for every
// script amld writes (run commands, SSH launch scripts, Slurm batch
// scripts) and every remote command line it sends.
//
// Thread-safety: a pure function, thread-safe.
#pragma once

#include <string>

namespace amld::base {

// `s` quoted for /bin/sh so that it stays one word with exactly its bytes:
// as is when it only holds characters no shell treats specially
// (letters, digits, -_./=:,+@%), else in single quotes with each ' written
// '\''. The empty string becomes ''.
std::string ShellQuote(const std::string& s);

}  // namespace amld::base

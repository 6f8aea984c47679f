// The data dir's privacy: everything in it (run secrets in amld.db and its
// WAL, sources and outputs in cas/ and runs/, the log) is the daemon's user's
// alone. PrepareDataDir makes a missing data dir 0700, and tightens an
// existing one that a person or a unit made under umask 022: the folder and
// every entry in it lose their group/other bits; a folder is walked only when
// it had such bits itself (a folder that is already private hides what is
// below it, so a second start walks nothing). Where a mode cannot be changed
// (another owner, a read-only mount) it refuses with the command to run.
// The umask for what the daemon creates afterwards is set by the daemon
// (PrivateUmask), so SQLite's files, the log and the CAS are 0600/0700.
//
// Thread-safety: PrepareDataDir is a plain function; PrivateUmask changes the
// process's umask and is called once, before any thread creates files.
#pragma once

#include <filesystem>

#include "absl/status/status.h"

namespace amld::daemon {

// Creates `dir` 0700 when missing (its parents as usual), else checks that
// this user owns it and removes group/other access from it and its contents.
// FAILED_PRECONDITION, naming the chmod to run, when that is impossible.
//
// `system_mode` (`amld --system`, as root): runs run as their submitters, in
// run folders each submitter owns (0700) under <dir>/runs/, so the data dir
// and runs/ are made 0711 — others may pass through to their own run folder
// but list neither — and runs/ is not walked (its folders are their users').
// envs/ is not walked either: the environment builder keeps its modes (each
// user's cache theirs, the shared environments readable by all;
// daemon/envs/env_builder.h). Everything else in the data dir stays root's
// alone.
absl::Status PrepareDataDir(const std::filesystem::path& dir, bool system_mode = false);

// Sets the process umask to 077: every file and folder the daemon creates
// from here on has no group/other access whatever the caller's umask.
void PrivateUmask();

}  // namespace amld::daemon

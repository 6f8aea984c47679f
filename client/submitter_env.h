// The submitter's environment for its runs (RunConfig.submitter_environment):
// what `aml run submit` sends so that a run on the local target sees the
// shell it was submitted from — an activated venv or conda env, PATH,
// LD_LIBRARY_PATH — as pueue's `add` and Slurm's --export=ALL do, instead of
// the daemon's (under systemd, the user manager's bare PATH).
//
// Every variable is sent except:
//   - names that look like secrets: containing SECRET, PASSWORD, PASSWD,
//     TOKEN, CREDENTIAL or PRIVATE, or ending in _KEY or _PASS (compared in
//     upper case; AWS_SECRET_ACCESS_KEY, GITHUB_TOKEN, WANDB_API_KEY), since
//     a run's config is stored and shown by `aml run show --output json`;
//     `pass` names the ones to send anyway;
//   - what describes the submitting shell rather than the run: PWD, OLDPWD,
//     SHLVL, _, COLUMNS, LINES;
//   - AMLD_*: the run's own variables (AMLD_RUN_ID, ...).
// The names left out are listed, sorted, in left_out.
//
// A run's working folder is its own, not the one it was submitted from, so
// relative folders in the path lists (PATH, PYTHONPATH, LD_LIBRARY_PATH,
// LIBRARY_PATH, CPATH, PKG_CONFIG_PATH, MANPATH: kPathListVariables) are
// made absolute against `cwd`, the submitter's working folder
// (PYTHONPATH=build/python means the submitter's build/python). Empty
// entries (a stray ":") are left as they are; so is everything when `cwd`
// is empty.
//
// `python` is the first executable python3 in PATH's absolute folders (after
// the above), as found (a venv's python3 is a link, and finds its venv
// through its own path).
//
// Thread-safety: pure functions of their arguments and the file system.
#pragma once

#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

#include "amld/v1/runs.pb.h"

namespace amld::client {

// Whether `name` looks like it holds a secret (see above).
bool LooksLikeSecret(std::string_view name);

// The variables whose values are ':'-separated folder lists (see above).
extern const std::vector<std::string> kPathListVariables;

// `envp` ("NAME=VALUE" entries, null-terminated, like environ) as sent, from
// a caller working in `cwd` (absolute, or empty).
amld::v1::SubmitterEnvironment CaptureSubmitterEnvironment(const char* const* envp,
                                                           const std::vector<std::string>& pass,
                                                           const std::filesystem::path& cwd);

// `list` (a ':'-separated folder list) with each relative, non-empty entry
// made absolute against `cwd` and normalized ("build/../lib" → "CWD/lib").
std::string AbsolutePathList(std::string_view list, const std::filesystem::path& cwd);

// The first executable regular file `program` in the absolute folders of
// `path` (a PATH value), or "".
std::string FindInPath(std::string_view program, std::string_view path);

}  // namespace amld::client

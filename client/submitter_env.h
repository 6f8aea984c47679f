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
// The names left out are listed, sorted, in left_out. `python` is the first
// executable python3 in PATH's absolute folders, as found (a venv's python3
// is a link, and finds its venv through its own path).
//
// Thread-safety: pure functions of their arguments and the file system.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "amld/v1/runs.pb.h"

namespace amld::client {

// Whether `name` looks like it holds a secret (see above).
bool LooksLikeSecret(std::string_view name);

// `envp` ("NAME=VALUE" entries, null-terminated, like environ) as sent.
amld::v1::SubmitterEnvironment CaptureSubmitterEnvironment(const char* const* envp,
                                                           const std::vector<std::string>& pass);

// The first executable regular file `program` in the absolute folders of
// `path` (a PATH value), or "".
std::string FindInPath(std::string_view program, std::string_view path);

}  // namespace amld::client

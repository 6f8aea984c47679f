// Shell completion and the man page of `aml`, both generated from the one
// command tree that parses the command line (cli.cc), so they never drift
// from `--help`:
//   - `aml completion bash|zsh` prints a script that calls
//     `aml __complete WORD...` (the words after `aml`, the last one being
//     completed) for each completion;
//   - `aml __complete` walks the tree like the parser: commands, their
//     flags, and values — run ids (the daemon's newest 100, and `last`) where
//     a command takes runs, compute targets after -c/--compute, experiments
//     after -e/--experiment, statuses after --status; a daemon that does not
//     answer just gives no values;
//   - `aml man` prints aml(1) in roff: every command with its flags and help.
//
// Thread-safety: for the CLI's thread.
#pragma once

#include <ostream>
#include <string>
#include <vector>

namespace CLI {
class App;
}

namespace amld::client::commands {

struct GlobalOptions;

// The candidates for the last of `words`, one per line, on `out`.
int RunComplete(const CLI::App& root, const GlobalOptions& global,
                const std::vector<std::string>& words, std::ostream& out);

// The script `aml completion SHELL` prints; empty for another shell.
std::string CompletionScript(const std::string& shell);

// aml(1).
std::string ManPage(const CLI::App& root);

}  // namespace amld::client::commands

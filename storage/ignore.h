// IgnoreRules: which files of a source folder stay out of a snapshot.
//
// Azure ML's rule: in each directory, `.amlignore` if it exists, otherwise
// `.gitignore`, with full gitignore semantics (see gitignore(5)): files in
// nested directories, later lines win, `!` re-includes, a trailing `/`
// matches directories only, a `/` at the start or middle anchors a pattern
// to the ignore file's directory, `**` spans directories, `\` escapes, and
// unescaped trailing spaces are dropped. A path inside an ignored directory
// is ignored, whatever a negation says (git does not descend there). `.git`
// directories are always ignored.
//
// Matching follows git 2.39 (dir.c, wildmatch.c) exactly, quirks included
// (e.g. an unterminated `[` matches nothing; CRLF and a UTF-8 BOM are
// tolerated); tests compare it with `git check-ignore`. Ignore files are
// followed through symlinks (git does not; Azure ML's Python reader does).
//
// Thread-safety: thread-safe. Ignore files are read lazily, once, the first
// time a path below their directory is checked.
#pragma once

#include <filesystem>
#include <memory>
#include <string>
#include <string_view>

#include "absl/status/status.h"

namespace amld::storage {

// The outcome of checking one path, with the rule that decided it (for
// `aml snapshot explain`).
struct IgnoreDecision {
  bool ignored = false;
  // The ignore file whose rule matched, relative to the root (e.g.
  // "src/.gitignore"), "(builtin)" for `.git`, or empty when no rule matched.
  std::string source;
  // 1-based line of the rule in `source`; 0 when no rule matched, and for
  // "(builtin)" (whose pattern is ".git/").
  int line = 0;
  // The rule as written, e.g. "!keep.log" or "data/" (less the line end and
  // the dropped trailing spaces). A "!" rule that matched leaves `ignored`
  // false but still names itself here.
  std::string pattern;
};

class IgnoreRules {
 public:
  // Rules for the folder at `root`; ignore files are read from disk as
  // needed. An empty root path means "nothing on disk": only AddFile().
  explicit IgnoreRules(std::filesystem::path root);
  ~IgnoreRules();
  IgnoreRules(const IgnoreRules&) = delete;
  IgnoreRules& operator=(const IgnoreRules&) = delete;

  // Supplies the content of the ignore file of directory `dir` ("" is the
  // root, else "a/b"), instead of reading it from disk. `source_name` is how
  // decisions name it.
  void AddFile(std::string_view dir, std::string_view contents, std::string_view source_name);

  // Checks `rel_path` ("a/b/c.txt": '/'-separated, relative to the root, no
  // leading or trailing '/'). `is_dir` says whether it is a directory.
  IgnoreDecision Check(std::string_view rel_path, bool is_dir) const;

  // OK, or the first error reading an ignore file that exists (e.g. no
  // permission). Check() has no error channel and treats such a file as
  // empty, which may include files the user meant to leave out, so a caller
  // that walks a tree asks this once after the walk and fails on an error.
  absl::Status ReadStatus() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace amld::storage

#include "storage/ignore.h"

#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <mutex>
#include <optional>
#include <unordered_map>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "base/file_util.h"

namespace amld::storage {
namespace {

constexpr std::string_view kBuiltinSource = "(builtin)";
constexpr std::string_view kGitDir = ".git";
// Real ignore files are tiny; one this large is a mistake (a data file
// named .gitignore), and reading it whole would only cost memory.
constexpr off_t kMaxIgnoreFileBytes = 100 << 20;

using uchar = unsigned char;

// ---------------------------------------------------------------------------
// Glob matching: git's wildmatch (same results, own code). The two abort
// codes tell callers up the recursion that no later start position can
// match either, which keeps patterns with many stars from going exponential.

enum class Wild { kMatch, kNoMatch, kAbortAll, kAbortToStarStar };

bool IsGlobSpecial(uchar c) { return c == '*' || c == '?' || c == '[' || c == '\\'; }

// POSIX classes over ASCII only, with git's ctype (e.g. '\v' is no space).
std::optional<bool> InCharClass(std::string_view name, uchar c) {
  bool lower = c >= 'a' && c <= 'z', upper = c >= 'A' && c <= 'Z';
  bool digit = c >= '0' && c <= '9';
  bool alpha = lower || upper;
  bool print = c >= 0x20 && c <= 0x7e;
  bool space = c == ' ' || c == '\t' || c == '\n' || c == '\r';
  if (name == "alnum") return alpha || digit;
  if (name == "alpha") return alpha;
  if (name == "blank") return c == ' ' || c == '\t';
  if (name == "cntrl") return c < 0x20 || c == 0x7f;
  if (name == "digit") return digit;
  if (name == "graph") return print && c != ' ';
  if (name == "lower") return lower;
  if (name == "print") return print;
  if (name == "punct") return print && c != ' ' && !alpha && !digit;
  if (name == "space") return space;
  if (name == "upper") return upper;
  if (name == "xdigit") return digit || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
  return std::nullopt;
}

class Glob {
 public:
  // `pathname`: '*' and '?' stop at '/' and only "**" between slashes spans
  // directories (git's WM_PATHNAME).
  Glob(std::string_view pattern, std::string_view text, bool pathname)
      : pat_begin_(reinterpret_cast<const uchar*>(pattern.data())),
        pat_end_(pat_begin_ + pattern.size()),
        text_begin_(reinterpret_cast<const uchar*>(text.data())),
        text_end_(text_begin_ + text.size()),
        pathname_(pathname) {}

  bool Matches() const { return Match(pat_begin_, text_begin_) == Wild::kMatch; }

 private:
  Wild Match(const uchar* p, const uchar* t) const;
  Wild MatchStar(const uchar*& p, const uchar*& t, bool& advance) const;
  Wild MatchBracket(const uchar*& p, uchar t_ch) const;

  const uchar* const pat_begin_;
  const uchar* const pat_end_;
  const uchar* const text_begin_;
  const uchar* const text_end_;
  const bool pathname_;
};

Wild Glob::Match(const uchar* p, const uchar* t) const {
  for (; p < pat_end_; ++t, ++p) {
    uchar p_ch = *p;
    if (t == text_end_ && p_ch != '*') return Wild::kAbortAll;
    uchar t_ch = t < text_end_ ? *t : 0;
    switch (p_ch) {
      case '\\':
        // A trailing backslash compares with 0, which no text char equals.
        ++p;
        p_ch = p < pat_end_ ? *p : 0;
        [[fallthrough]];
      default:
        if (t_ch != p_ch) return Wild::kNoMatch;
        continue;
      case '?':
        if (pathname_ && t_ch == '/') return Wild::kNoMatch;
        continue;
      case '[': {
        Wild w = MatchBracket(p, t_ch);
        if (w != Wild::kMatch) return w;
        continue;
      }
      case '*': {
        bool advance = false;
        Wild w = MatchStar(p, t, advance);
        if (!advance) return w;
        continue;
      }
    }
  }
  return t == text_end_ ? Wild::kMatch : Wild::kNoMatch;
}

// `p` is at a '*'. Either decides the match (advance = false), or consumed
// "*/" up to the next '/' of the text and leaves p and t on the two slashes
// for the caller's loop to step over (advance = true).
Wild Glob::MatchStar(const uchar*& p, const uchar*& t, bool& advance) const {
  const uchar* star = p++;
  bool match_slash;
  if (p < pat_end_ && *p == '*') {
    while (p < pat_end_ && *p == '*') ++p;
    bool segment_start = star == pat_begin_ || star[-1] == '/';
    bool segment_end = p == pat_end_ || *p == '/' ||
                       (*p == '\\' && p + 1 < pat_end_ && p[1] == '/');
    if (segment_start && segment_end) {
      // "**/" may match no directory at all: "a/**/b" matches "a/b". git
      // drops a kAbortAll here and retries after every later slash, which is
      // exponential in the number of "**/" (seconds for "**/**/**/**/**/z"
      // on a deep path); a later start cannot match either, so stop.
      if (p < pat_end_ && *p == '/') {
        Wild w = Match(p + 1, t);
        if (w == Wild::kMatch || w == Wild::kAbortAll) return w;
      }
      match_slash = true;
    } else {
      match_slash = false;
    }
  } else {
    match_slash = !pathname_;
  }
  if (p == pat_end_) {
    if (!match_slash && std::memchr(t, '/', text_end_ - t) != nullptr) return Wild::kNoMatch;
    return Wild::kMatch;
  }
  if (!match_slash && *p == '/') {
    const void* slash = std::memchr(t, '/', text_end_ - t);
    if (slash == nullptr) return Wild::kNoMatch;
    t = static_cast<const uchar*>(slash);
    advance = true;
    return Wild::kMatch;
  }
  for (; t < text_end_; ++t) {
    // A literal after the star must appear in the text: skip to it.
    if (!IsGlobSpecial(*p)) {
      while (t < text_end_ && (match_slash || *t != '/') && *t != *p) ++t;
      // Not in the rest of the text: no later start finds it either (git
      // says kNoMatch here, which makes callers retry for nothing).
      if (t == text_end_) return Wild::kAbortAll;
      if (*t != *p) return Wild::kNoMatch;
    }
    Wild w = Match(p, t);
    if (w != Wild::kNoMatch) {
      if (!match_slash || w != Wild::kAbortToStarStar) return w;
    } else if (!match_slash && *t == '/') {
      return Wild::kAbortToStarStar;
    }
  }
  return Wild::kAbortAll;
}

// `p` is at a '['; on kMatch it is left on the closing ']'. An unterminated
// class aborts the whole match, as in git: such a pattern matches nothing.
Wild Glob::MatchBracket(const uchar*& p, uchar t_ch) const {
  auto at = [this](const uchar* q) -> uchar { return q < pat_end_ ? *q : 0; };
  uchar p_ch = at(++p);
  if (p_ch == '!') p_ch = '^';
  bool negated = p_ch == '^';
  if (negated) p_ch = at(++p);
  uchar prev_ch = 0;
  bool matched = false;
  do {
    if (p >= pat_end_) return Wild::kAbortAll;
    if (p_ch == '\\') {
      if (++p >= pat_end_) return Wild::kAbortAll;
      p_ch = *p;
      if (t_ch == p_ch) matched = true;
    } else if (p_ch == '-' && prev_ch && p + 1 < pat_end_ && p[1] != ']') {
      p_ch = *++p;
      if (p_ch == '\\') {
        if (++p >= pat_end_) return Wild::kAbortAll;
        p_ch = *p;
      }
      if (t_ch <= p_ch && t_ch >= prev_ch) matched = true;
      p_ch = 0;  // a range's end cannot start another range
    } else if (p_ch == '[' && at(p + 1) == ':') {
      const uchar* name = p + 2;
      p = name;
      while (p < pat_end_ && *p != ']') ++p;
      if (p >= pat_end_) return Wild::kAbortAll;
      if (p - name - 1 < 0 || p[-1] != ':') {
        // No ":]": the '[' is an ordinary member.
        p = name - 2;
        p_ch = '[';
        if (t_ch == p_ch) matched = true;
        continue;
      }
      std::optional<bool> in = InCharClass(
          std::string_view(reinterpret_cast<const char*>(name), p - name - 1), t_ch);
      if (!in) return Wild::kAbortAll;
      if (*in) matched = true;
      p_ch = 0;
    } else if (t_ch == p_ch) {
      matched = true;
    }
  } while (prev_ch = p_ch, (p_ch = at(++p)) != ']');
  if (matched == negated || (pathname_ && t_ch == '/')) return Wild::kNoMatch;
  return Wild::kMatch;
}

// ---------------------------------------------------------------------------
// Compiled rules.

struct Pattern {
  std::string text;  // the line as written, for decisions
  // The glob without "!", the trailing '/', or (when anchored) a leading '/'.
  std::string glob;
  size_t literal_prefix = 0;  // leading chars of `glob` with no glob syntax
  int line = 0;
  bool negative = false;
  bool dir_only = false;
  bool basename_only = false;  // no '/' inside: matches the name at any depth
  bool ends_with = false;      // "*literal": a suffix compare does
};

struct IgnoreFile {
  std::string dir;  // "" or "a/b"
  std::string source;
  std::vector<Pattern> patterns;
};

// Drops trailing spaces unless escaped: "a \ " keeps "a \ ".
std::string_view TrimTrailingSpaces(std::string_view s) {
  size_t space_run = std::string_view::npos;  // start of the current run of spaces
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == ' ') {
      if (space_run == std::string_view::npos) space_run = i;
      continue;
    }
    if (s[i] == '\\' && ++i >= s.size()) return s;
    space_run = std::string_view::npos;
  }
  return s.substr(0, space_run);
}

size_t LiteralPrefixLength(std::string_view s) {
  size_t i = 0;
  while (i < s.size() && !IsGlobSpecial(static_cast<uchar>(s[i]))) ++i;
  return i;
}

std::optional<Pattern> CompilePattern(std::string_view line_text, int line) {
  Pattern p;
  p.text = std::string(line_text);
  p.line = line;
  std::string_view body = line_text;
  if (!body.empty() && body[0] == '!') {
    p.negative = true;
    body.remove_prefix(1);
  }
  size_t literal = LiteralPrefixLength(body);
  if (!body.empty() && body.back() == '/') {
    p.dir_only = true;
    body.remove_suffix(1);
  }
  // Matches nothing (git keeps it, but it never decides anything).
  if (body.empty()) return std::nullopt;
  literal = std::min(literal, body.size());
  p.basename_only = body.find('/') == std::string_view::npos;
  if (p.basename_only) {
    p.ends_with = body[0] == '*' && LiteralPrefixLength(body.substr(1)) == body.size() - 1;
  } else if (body[0] == '/') {
    body.remove_prefix(1);
    if (literal > 0) --literal;
  }
  p.glob = std::string(body);
  p.literal_prefix = literal;
  return p;
}

std::vector<Pattern> ParseIgnoreFile(std::string_view contents) {
  constexpr std::string_view kUtf8Bom = "\xEF\xBB\xBF";
  if (contents.substr(0, kUtf8Bom.size()) == kUtf8Bom) contents.remove_prefix(kUtf8Bom.size());
  std::vector<Pattern> patterns;
  int line = 0;
  while (!contents.empty()) {
    ++line;
    size_t eol = contents.find('\n');
    std::string_view entry = contents.substr(0, eol);
    contents.remove_prefix(eol == std::string_view::npos ? contents.size() : eol + 1);
    if (entry.empty() || entry[0] == '#') continue;
    if (entry.back() == '\r') entry.remove_suffix(1);
    entry = entry.substr(0, entry.find('\0'));  // git reads lines as C strings
    if (auto p = CompilePattern(TrimTrailingSpaces(entry), line)) patterns.push_back(std::move(*p));
  }
  return patterns;
}

bool MatchesBasename(const Pattern& p, std::string_view name) {
  if (p.literal_prefix == p.glob.size()) return name == p.glob;
  if (p.ends_with) {
    std::string_view suffix = std::string_view(p.glob).substr(1);
    return name.size() >= suffix.size() && name.substr(name.size() - suffix.size()) == suffix;
  }
  return Glob(p.glob, name, /*pathname=*/false).Matches();
}

// `rel` is the path relative to the ignore file's directory. The literal
// prefix is compared first and globbing starts after it; this is not only
// faster but also what git does, so "foo**/bar" spans directories there.
bool MatchesPathname(const Pattern& p, std::string_view rel) {
  std::string_view glob = p.glob;
  if (p.literal_prefix > 0) {
    if (rel.substr(0, p.literal_prefix) != glob.substr(0, p.literal_prefix)) return false;
    glob.remove_prefix(p.literal_prefix);
    rel.remove_prefix(p.literal_prefix);
    if (glob.empty()) return rel.empty();
  }
  return Glob(glob, rel, /*pathname=*/true).Matches();
}

bool Matches(const Pattern& p, std::string_view rel, std::string_view name, bool is_dir) {
  if (p.dir_only && !is_dir) return false;
  return p.basename_only ? MatchesBasename(p, name) : MatchesPathname(p, rel);
}

using FileStack = std::vector<std::shared_ptr<const IgnoreFile>>;

// The last rule that matches, deepest file first.
IgnoreDecision Decide(const FileStack& files, std::string_view path, std::string_view name,
                      bool is_dir) {
  for (auto f = files.rbegin(); f != files.rend(); ++f) {
    const IgnoreFile& file = **f;
    std::string_view rel = path.substr(file.dir.empty() ? 0 : file.dir.size() + 1);
    for (auto p = file.patterns.rbegin(); p != file.patterns.rend(); ++p) {
      if (!Matches(*p, rel, name, is_dir)) continue;
      return IgnoreDecision{!p->negative, file.source, p->line, p->text};
    }
  }
  return {};
}

IgnoreDecision BuiltinGitDecision() {
  return IgnoreDecision{true, std::string(kBuiltinSource), 0, ".git/"};
}

std::string_view TrimSlashes(std::string_view s) {
  while (!s.empty() && s.front() == '/') s.remove_prefix(1);
  while (!s.empty() && s.back() == '/') s.remove_suffix(1);
  return s;
}

std::pair<std::string_view, std::string_view> SplitParent(std::string_view path) {
  size_t slash = path.rfind('/');
  if (slash == std::string_view::npos) return {std::string_view(), path};
  return {path.substr(0, slash), path.substr(slash + 1)};
}

// What holds for every entry of one directory.
struct DirState {
  // Set when the directory itself is ignored: then so is everything in it.
  std::optional<IgnoreDecision> ignored;
  // Ignore files that apply to its entries, shallowest first.
  FileStack files;
};

struct StringHash {
  using is_transparent = void;
  size_t operator()(std::string_view s) const { return std::hash<std::string_view>()(s); }
};
template <typename V>
using StringMap = std::unordered_map<std::string, V, StringHash, std::equal_to<>>;

}  // namespace

struct IgnoreRules::Impl {
  std::filesystem::path root;
  std::mutex mu;
  // Per directory: its ignore file, or null for none. Filled by AddFile()
  // and by reading the disk on first use.
  StringMap<std::shared_ptr<const IgnoreFile>> files;
  // Immutable once built, so Check() matches outside the lock.
  StringMap<std::shared_ptr<const DirState>> states;
  absl::Status read_status;

  std::shared_ptr<const DirState> StateLocked(std::string_view dir);
  std::shared_ptr<const DirState> BuildStateLocked(std::string_view dir,
                                                   const std::shared_ptr<const DirState>& parent);
  std::shared_ptr<const IgnoreFile> FileLocked(std::string_view dir);
  std::shared_ptr<const IgnoreFile> ReadFromDiskLocked(std::string_view dir);
};

std::shared_ptr<const DirState> IgnoreRules::Impl::StateLocked(std::string_view dir) {
  if (auto it = states.find(dir); it != states.end()) return it->second;
  // Build the missing ancestors top-down, without recursion: paths can be deep.
  std::vector<std::string_view> missing = {dir};
  std::shared_ptr<const DirState> known;
  while (!missing.back().empty()) {
    std::string_view parent = SplitParent(missing.back()).first;
    if (auto it = states.find(parent); it != states.end()) {
      known = it->second;
      break;
    }
    missing.push_back(parent);
  }
  for (auto d = missing.rbegin(); d != missing.rend(); ++d) {
    known = BuildStateLocked(*d, known);
    states.emplace(std::string(*d), known);
  }
  return known;
}

std::shared_ptr<const DirState> IgnoreRules::Impl::BuildStateLocked(
    std::string_view dir, const std::shared_ptr<const DirState>& parent) {
  auto state = std::make_shared<DirState>();
  if (dir.empty()) {
    if (auto f = FileLocked(dir)) state->files.push_back(std::move(f));
    return state;
  }
  if (parent->ignored) return parent;
  std::string_view name = SplitParent(dir).second;
  if (name == kGitDir) {
    state->ignored = BuiltinGitDecision();
    return state;
  }
  IgnoreDecision d = Decide(parent->files, dir, name, /*is_dir=*/true);
  if (d.ignored) {
    // git never reads ignore files inside an ignored directory; nor do we.
    state->ignored = std::move(d);
    return state;
  }
  state->files = parent->files;
  if (auto f = FileLocked(dir)) state->files.push_back(std::move(f));
  return state;
}

std::shared_ptr<const IgnoreFile> IgnoreRules::Impl::FileLocked(std::string_view dir) {
  if (auto it = files.find(dir); it != files.end()) return it->second;
  std::shared_ptr<const IgnoreFile> file = root.empty() ? nullptr : ReadFromDiskLocked(dir);
  files.emplace(std::string(dir), file);
  return file;
}

std::shared_ptr<const IgnoreFile> IgnoreRules::Impl::ReadFromDiskLocked(std::string_view dir) {
  for (std::string_view name : {".amlignore", ".gitignore"}) {
    std::string source = dir.empty() ? std::string(name)
                                     : std::string(dir) + "/" + std::string(name);
    std::filesystem::path path = root / source;
    absl::Status error;
    struct stat st;
    if (::stat(path.c_str(), &st) != 0) {
      int err = errno;
      if (err == ENOENT || err == ENOTDIR) continue;
      error = base::ErrnoStatus(err, "stat", path);
    } else if (!S_ISREG(st.st_mode)) {
      continue;  // e.g. a directory named .gitignore: not an ignore file
    } else if (st.st_size > kMaxIgnoreFileBytes) {
      error = absl::InvalidArgumentError(
          absl::StrCat(path.string(), " is larger than 100 MiB, too large for an ignore file"));
    } else {
      absl::StatusOr<std::string> contents = base::ReadFileToString(path);
      if (contents.ok()) {
        auto file = std::make_shared<IgnoreFile>();
        file->dir = std::string(dir);
        file->source = std::move(source);
        file->patterns = ParseIgnoreFile(*contents);
        return file;
      }
      error = contents.status();
    }
    if (read_status.ok()) {
      read_status = absl::Status(
          error.code(), absl::StrCat("cannot read ignore rules: ", error.message(),
                                     "; make the file readable or remove it"));
    }
    return nullptr;
  }
  return nullptr;
}

IgnoreRules::IgnoreRules(std::filesystem::path root) : impl_(std::make_unique<Impl>()) {
  impl_->root = std::move(root);
}

IgnoreRules::~IgnoreRules() = default;

void IgnoreRules::AddFile(std::string_view dir, std::string_view contents,
                          std::string_view source_name) {
  auto file = std::make_shared<IgnoreFile>();
  file->dir = std::string(TrimSlashes(dir));
  file->source = std::string(source_name);
  file->patterns = ParseIgnoreFile(contents);
  std::lock_guard<std::mutex> lock(impl_->mu);
  impl_->files.insert_or_assign(file->dir, std::move(file));
  impl_->states.clear();  // built from the old set of files
}

IgnoreDecision IgnoreRules::Check(std::string_view rel_path, bool is_dir) const {
  rel_path = TrimSlashes(rel_path);
  if (rel_path.empty()) return {};  // the root itself
  auto [parent, name] = SplitParent(rel_path);
  std::shared_ptr<const DirState> state;
  {
    std::lock_guard<std::mutex> lock(impl_->mu);
    state = impl_->StateLocked(parent);
  }
  if (state->ignored) return *state->ignored;
  if (is_dir && name == kGitDir) return BuiltinGitDecision();
  return Decide(state->files, rel_path, name, is_dir);
}

absl::Status IgnoreRules::ReadStatus() const {
  std::lock_guard<std::mutex> lock(impl_->mu);
  return impl_->read_status;
}

}  // namespace amld::storage

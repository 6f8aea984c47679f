#include "daemon/envs/env_cache.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <system_error>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "base/file_util.h"

namespace amld::daemon {
namespace {

namespace fs = std::filesystem;

constexpr char kSizeFile[] = "amld-size";
constexpr char kLastUseFile[] = "amld-last-use";

bool IsDigest(const std::string& name) {
  return name.size() == 64 && std::all_of(name.begin(), name.end(), [](char c) {
           return absl::ascii_isdigit(c) || (c >= 'a' && c <= 'f');
         });
}

}  // namespace

int64_t MeasureFolder(const fs::path& folder) {
  int64_t total = 0;
  std::error_code ec;
  for (fs::recursive_directory_iterator it(folder, ec), end; !ec && it != end; it.increment(ec)) {
    std::error_code file_ec;
    if (it->is_regular_file(file_ec) && !it->is_symlink(file_ec)) {
      const auto size = it->file_size(file_ec);
      if (!file_ec) total += static_cast<int64_t>(size);
    }
  }
  return total;
}

int64_t RecordSize(const fs::path& folder) {
  const int64_t bytes = MeasureFolder(folder);
  (void)base::WriteFileAtomically(folder / kSizeFile, absl::StrCat(bytes, "\n"));
  return bytes;
}

void TouchLastUse(const fs::path& folder) {
  const fs::path file = folder / kLastUseFile;
  const int fd = ::open(file.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0) return;  // a removed environment: nothing to record
  (void)::futimens(fd, nullptr);
  ::close(fd);
}

std::vector<CachedEnvironment> ListCache(const fs::path& root) {
  std::vector<CachedEnvironment> found;
  std::error_code ec;
  for (const fs::directory_entry& e : fs::directory_iterator(root, ec)) {
    const std::string name = e.path().filename().string();
    if (!IsDigest(name) || !e.is_symlink(ec)) continue;
    CachedEnvironment env;
    env.digest = name;
    env.folder = root / fs::read_symlink(e.path(), ec);
    if (ec || !fs::is_directory(env.folder, ec)) continue;
    absl::StatusOr<std::string> size = base::ReadFileToString(env.folder / kSizeFile);
    if (!size.ok() || !absl::SimpleAtoi(absl::StripAsciiWhitespace(*size), &env.bytes)) {
      env.bytes = RecordSize(env.folder);
    }
    struct stat st;
    const fs::path used = env.folder / kLastUseFile;
    if (::stat(used.c_str(), &st) == 0 || ::stat(env.folder.c_str(), &st) == 0) {
      env.last_used = absl::TimeFromTimespec(st.st_mtim);
    }
    found.push_back(std::move(env));
  }
  std::sort(found.begin(), found.end(), [](const auto& a, const auto& b) {
    return a.last_used != b.last_used ? a.last_used < b.last_used : a.digest < b.digest;
  });
  return found;
}

}  // namespace amld::daemon

// libFuzzer target: an .amlignore/.gitignore file's text (storage/ignore.h),
// then paths checked against it. Never crashes, never hangs (patterns with
// many '*' stay linear enough for 1 MiB files).
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "storage/ignore.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  amld::storage::IgnoreRules rules{std::filesystem::path()};
  rules.AddFile("", text, ".amlignore");
  rules.AddFile("sub", text.substr(text.size() / 2), ".gitignore");
  for (std::string_view path : {"a", "sub/b.txt", "sub/deep/c.py", ".git", "x/y/z/__pycache__"}) {
    (void)rules.Check(path, false);
    (void)rules.Check(path, true);
  }
  // Lines of the input as paths too: each pattern checked against itself.
  size_t start = 0;
  for (int n = 0; n < 16 && start < text.size(); ++n) {
    size_t end = text.find('\n', start);
    if (end == std::string_view::npos) end = text.size();
    std::string_view line = text.substr(start, end - start);
    if (!line.empty() && line.front() != '/' && line.find('\0') == std::string_view::npos) {
      (void)rules.Check(line, false);
    }
    start = end + 1;
  }
  return 0;
}

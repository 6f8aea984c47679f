// libFuzzer target: the client's stat-cache file (storage/snapshot/
// stat_cache.h), which is read from the user's cache folder and trusted only
// as far as its checksum. Inputs are written as the file and loaded; to get
// past the checksum, the last 32 bytes are replaced by the right SHA-256 of
// the rest when the first byte is odd.
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <string>

#include "storage/digest.h"
#include "storage/snapshot/stat_cache.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const std::filesystem::path file =
      std::filesystem::temp_directory_path() / ("amld-stat-cache-fuzz." + std::to_string(::getpid()));
  std::string bytes(reinterpret_cast<const char*>(data), size);
  if (size > 33 && (data[0] & 1) != 0) {
    bytes.resize(size - 32);
    amld::storage::Sha256 sha;
    sha.Update(bytes);
    const std::string hex = sha.FinishHex();
    for (size_t i = 0; i < 32; ++i) bytes.push_back(static_cast<char>(std::stoi(hex.substr(2 * i, 2), nullptr, 16)));
  }
  { std::ofstream(file, std::ios::binary | std::ios::trunc) << bytes; }
  amld::storage::StatCache cache = amld::storage::StatCache::Load(file);
  (void)cache.load_problem();
  return 0;
}

// libFuzzer target: a stored Directory blob (storage/snapshot/
// directory_codec.h), as a client or a damaged store could hand it over.
// What decodes must be canonical: encoding it again gives the same bytes.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "storage/snapshot/directory_codec.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const int depth = data[0] % 8;
  std::string_view bytes(reinterpret_cast<const char*>(data) + 1, size - 1);
  auto dir = amld::storage::DecodeDirectory(bytes, depth);
  if (dir.ok() && amld::storage::EncodeDirectory(*dir) != bytes) std::abort();
  return 0;
}

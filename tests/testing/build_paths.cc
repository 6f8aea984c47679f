#include "tests/testing/build_paths.h"

namespace amld::testing {

const std::filesystem::path& SourceDir() {
  static const std::filesystem::path dir = AMLD_SOURCE_DIR;
  return dir;
}

const std::filesystem::path& BinaryDir() {
  static const std::filesystem::path dir = AMLD_BINARY_DIR;
  return dir;
}

}  // namespace amld::testing

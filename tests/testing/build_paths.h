// Where this build's source tree and build folder are. Kept out of compile
// definitions on every test object so that two checkouts of the tree (a
// worktree, a clone in /root) compile the same test sources to the same
// objects and share ccache entries; only build_paths.cc differs.
//
// Thread-safety: thread-safe (constant data).
#pragma once

#include <filesystem>

namespace amld::testing {

// The clone's top folder (where CMakeLists.txt is).
const std::filesystem::path& SourceDir();
// The build folder (where bin/amld is).
const std::filesystem::path& BinaryDir();

}  // namespace amld::testing

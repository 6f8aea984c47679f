#include "daemon/azureml_alias.h"

#include <unistd.h>

#include <fstream>
#include <string>
#include <system_error>

#include "absl/strings/str_cat.h"

namespace amld::daemon {

namespace fs = std::filesystem;

namespace {

absl::StatusOr<fs::path> WriteTree(std::span<const AliasFile> files, const fs::path& data_dir,
                                   const std::string& name, bool readable_by_others) {
  const fs::path dest = data_dir / name;
  const fs::path tmp = data_dir / absl::StrCat(".", name, "-", ::getpid());
  std::error_code ec;
  fs::remove_all(tmp, ec);
  for (const AliasFile& f : files) {
    const fs::path path = tmp / f.path;
    fs::create_directories(path.parent_path(), ec);
    if (ec) {
      return absl::InternalError(
          absl::StrCat("create ", path.parent_path().string(), ": ", ec.message()));
    }
    // No fsync: the folder is written again at every start.
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out << f.text;
    out.close();
    if (!out) return absl::InternalError(absl::StrCat("write ", path.string()));
  }
  // The data dir is private; in system mode runs run as their submitters,
  // who must read the alias through it (the data dir is 0711 there): every
  // folder 0755 and file 0644. In user mode it stays as private as the rest.
  if (readable_by_others) {
    const fs::perms dir = fs::perms::owner_all | fs::perms::group_read | fs::perms::group_exec |
                          fs::perms::others_read | fs::perms::others_exec;
    const fs::perms file = fs::perms::owner_read | fs::perms::owner_write |
                           fs::perms::group_read | fs::perms::others_read;
    fs::permissions(tmp, dir, ec);
    for (auto it = fs::recursive_directory_iterator(tmp, ec); !ec && it != fs::end(it);
         it.increment(ec)) {
      fs::permissions(it->path(), it->is_directory() ? dir : file, ec);
    }
    if (ec) return absl::InternalError(absl::StrCat("chmod ", tmp.string(), ": ", ec.message()));
  }
  fs::remove_all(dest, ec);
  fs::rename(tmp, dest, ec);
  if (ec) return absl::InternalError(absl::StrCat("rename to ", dest.string(), ": ", ec.message()));
  return dest;
}

}  // namespace

absl::StatusOr<fs::path> WriteAzuremlAlias(const fs::path& data_dir, bool readable_by_others) {
  return WriteTree(AzuremlAliasFiles(), data_dir, "azureml-alias", readable_by_others);
}

absl::StatusOr<fs::path> WriteRunPython(const fs::path& data_dir, bool readable_by_others) {
  return WriteTree(RunPythonFiles(), data_dir, "run-python", readable_by_others);
}

}  // namespace amld::daemon

#include "daemon/envs/env_registry.h"

#include <algorithm>
#include <system_error>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/strip.h"
#include "base/file_util.h"
#include "base/status_macros.h"
#include "daemon/envs/env_spec.h"
#include "google/protobuf/io/coded_stream.h"
#include "google/protobuf/io/zero_copy_stream_impl_lite.h"
#include "google/protobuf/text_format.h"
#include "google/protobuf/util/message_differencer.h"

namespace amld::daemon {
namespace {

namespace fs = std::filesystem;
using amld::v1::Environment;
using amld::v1::RegisteredEnvironment;

constexpr char kSuffix[] = ".binpb";

// What makes two versions the same environment.
Environment Content(Environment env) {
  env.clear_name();
  env.clear_version();
  env.clear_digest();
  return env;
}

}  // namespace

absl::Status ValidateEnvironmentName(const std::string& name) {
  const bool ok = !name.empty() && name.size() <= 255 && name[0] != '.' && name[0] != '-' &&
                  std::all_of(name.begin(), name.end(), [](char c) {
                    return absl::ascii_isalnum(c) || c == '.' || c == '_' || c == '-';
                  });
  if (ok) return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrCat(
      "environment name \"", name,
      "\" is not valid: use 1-255 letters, digits, '.', '_' or '-', not starting with '.' or "
      "'-'"));
}

absl::StatusOr<std::vector<Environment>> CuratedEnvironments() {
  std::vector<Environment> all;
  for (const CuratedFile& file : CuratedEnvironmentFiles()) {
    Environment& env = all.emplace_back();
    if (!google::protobuf::TextFormat::ParseFromString(file.text, &env)) {
      return absl::InternalError(
          absl::StrCat("curated environment file ", file.file, " does not parse"));
    }
    env.set_version("1");
  }
  return all;
}

absl::StatusOr<std::unique_ptr<EnvironmentRegistry>> EnvironmentRegistry::Open(fs::path root) {
  std::unique_ptr<EnvironmentRegistry> registry(new EnvironmentRegistry(std::move(root)));
  AMLD_ASSIGN_OR_RETURN(std::vector<Environment> all, CuratedEnvironments());
  for (Environment& env : all) {
    AMLD_RETURN_IF_ERROR(ValidateEnvironmentName(env.name()));
    RegisteredEnvironment curated;
    *curated.mutable_environment() = std::move(env);
    curated.set_curated(true);
    curated.add_versions("1");
    registry->curated_.push_back(std::move(curated));
  }
  std::sort(registry->curated_.begin(), registry->curated_.end(), [](const auto& a, const auto& b) {
    return a.environment().name() < b.environment().name();
  });
  return registry;
}

const RegisteredEnvironment* EnvironmentRegistry::Curated(const std::string& name) const {
  for (const RegisteredEnvironment& c : curated_) {
    if (c.environment().name() == name) return &c;
  }
  return nullptr;
}

absl::StatusOr<std::vector<int>> EnvironmentRegistry::VersionsLocked(
    const std::string& name) const {
  std::vector<int> versions;
  std::error_code ec;
  fs::directory_iterator it(root_ / name, ec);
  if (ec) {
    if (ec == std::errc::no_such_file_or_directory) return versions;
    return absl::InternalError(
        absl::StrCat("cannot list ", (root_ / name).string(), ": ", ec.message()));
  }
  for (const fs::directory_entry& e : it) {
    const std::string file = e.path().filename().string();
    absl::string_view stem = file;
    int v = 0;
    if (absl::ConsumeSuffix(&stem, kSuffix) && absl::SimpleAtoi(stem, &v) && v > 0) {
      versions.push_back(v);
    }
  }
  std::sort(versions.begin(), versions.end());
  return versions;
}

absl::StatusOr<RegisteredEnvironment> EnvironmentRegistry::ReadLocked(const std::string& name,
                                                                      int version) const {
  const fs::path path = root_ / name / absl::StrCat(version, kSuffix);
  AMLD_ASSIGN_OR_RETURN(std::string data, base::ReadFileToString(path));
  RegisteredEnvironment found;
  if (!found.mutable_environment()->ParseFromString(data)) {
    return absl::DataLossError(absl::StrCat(path.string(), " is not an environment"));
  }
  AMLD_ASSIGN_OR_RETURN(std::vector<int> versions, VersionsLocked(name));
  for (int v : versions) found.add_versions(absl::StrCat(v));
  return found;
}

absl::StatusOr<RegisteredEnvironment> EnvironmentRegistry::Register(Environment env) {
  AMLD_RETURN_IF_ERROR(ValidateEnvironmentName(env.name()));
  if (Curated(env.name()) != nullptr) {
    return absl::AlreadyExistsError(
        absl::StrCat("\"", env.name(),
                     "\" is a curated environment that ships with amld; register yours "
                     "under another name (env.clone(\"my-env\"))"));
  }
  if (IsManagedEnvironment(env)) {
    // Well-formed (a conda tool may be configured by the time it is used).
    AMLD_RETURN_IF_ERROR(SpecFromEnvironment(env, /*conda_configured=*/true).status());
  }
  absl::MutexLock lock(&mu_);
  AMLD_ASSIGN_OR_RETURN(std::vector<int> versions, VersionsLocked(env.name()));
  const Environment content = Content(env);
  for (int v : versions) {
    AMLD_ASSIGN_OR_RETURN(RegisteredEnvironment existing, ReadLocked(env.name(), v));
    if (google::protobuf::util::MessageDifferencer::Equals(Content(existing.environment()),
                                                           content)) {
      return existing;
    }
  }
  const int version = versions.empty() ? 1 : versions.back() + 1;
  env.set_version(absl::StrCat(version));
  env.clear_digest();
  std::error_code ec;
  fs::create_directories(root_ / env.name(), ec);
  if (ec) {
    return absl::InternalError(
        absl::StrCat("cannot create ", (root_ / env.name()).string(), ": ", ec.message()));
  }
  std::string data;
  google::protobuf::io::StringOutputStream stream(&data);
  {
    google::protobuf::io::CodedOutputStream coded(&stream);
    coded.SetSerializationDeterministic(true);
    env.SerializeToCodedStream(&coded);
  }
  AMLD_RETURN_IF_ERROR(
      base::WriteFileAtomically(root_ / env.name() / absl::StrCat(version, kSuffix), data));
  return ReadLocked(env.name(), version);
}

absl::StatusOr<RegisteredEnvironment> EnvironmentRegistry::Get(const std::string& name,
                                                               const std::string& version) const {
  if (const RegisteredEnvironment* c = Curated(name); c != nullptr) {
    if (!version.empty() && version != "1") {
      return absl::NotFoundError(absl::StrCat("curated environment \"", name,
                                              "\" has only version 1, not \"", version, "\""));
    }
    return *c;
  }
  AMLD_RETURN_IF_ERROR(ValidateEnvironmentName(name));
  absl::ReaderMutexLock lock(&mu_);
  AMLD_ASSIGN_OR_RETURN(std::vector<int> versions, VersionsLocked(name));
  if (versions.empty()) {
    std::vector<std::string> names;
    for (const RegisteredEnvironment& c : curated_) names.push_back(c.environment().name());
    std::error_code ec;
    std::vector<std::string> registered;
    for (const fs::directory_entry& e : fs::directory_iterator(root_, ec)) {
      registered.push_back(e.path().filename().string());
    }
    std::sort(registered.begin(), registered.end());
    return absl::NotFoundError(absl::StrCat(
        "environment \"", name, "\" is not registered; there are the curated environments ",
        absl::StrJoin(names, ", "),
        registered.empty() ? std::string(" and no registered ones")
                           : absl::StrCat(" and the registered ", absl::StrJoin(registered, ", ")),
        " (register one with Environment.register(ws))"));
  }
  if (version.empty()) return ReadLocked(name, versions.back());
  int v = 0;
  if (!absl::SimpleAtoi(version, &v) ||
      std::find(versions.begin(), versions.end(), v) == versions.end()) {
    return absl::NotFoundError(absl::StrCat("environment \"", name, "\" has no version \"", version,
                                            "\"; it has ", absl::StrJoin(versions, ", ")));
  }
  return ReadLocked(name, v);
}

absl::StatusOr<std::vector<RegisteredEnvironment>> EnvironmentRegistry::List() const {
  std::vector<RegisteredEnvironment> all = curated_;
  absl::ReaderMutexLock lock(&mu_);
  std::error_code ec;
  std::vector<std::string> names;
  for (const fs::directory_entry& e : fs::directory_iterator(root_, ec)) {
    names.push_back(e.path().filename().string());
  }
  std::sort(names.begin(), names.end());
  for (const std::string& name : names) {
    if (!ValidateEnvironmentName(name).ok()) continue;  // a temp file of an atomic write
    AMLD_ASSIGN_OR_RETURN(std::vector<int> versions, VersionsLocked(name));
    if (versions.empty()) continue;
    AMLD_ASSIGN_OR_RETURN(RegisteredEnvironment latest, ReadLocked(name, versions.back()));
    all.push_back(std::move(latest));
  }
  return all;
}

}  // namespace amld::daemon

#include "daemon/envs/env_registry.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "tests/testing/test_util.h"

namespace amld::daemon {
namespace {

using amld::testing::TempDir;
using amld::v1::Environment;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

Environment Pip(const std::string& name, std::vector<std::string> lines) {
  Environment env;
  env.set_name(name);
  for (std::string& l : lines) env.add_pip_requirements(std::move(l));
  return env;
}

TEST(EnvRegistryTest, VersionsCountUpAndTheSameSpecIsTheSameVersion) {
  TempDir dir;
  auto registry = EnvironmentRegistry::Open(dir / "environments");
  ASSERT_TRUE(registry.ok()) << registry.status();
  auto v1 = (*registry)->Register(Pip("team", {"alpha"}));
  ASSERT_TRUE(v1.ok()) << v1.status();
  EXPECT_EQ(v1->environment().version(), "1");
  Environment same = Pip("team", {"alpha"});
  same.set_version("9");  // ignored: the registry numbers versions
  EXPECT_EQ((*registry)->Register(same)->environment().version(), "1");
  auto v2 = (*registry)->Register(Pip("team", {"alpha", "beta"}));
  EXPECT_EQ(v2->environment().version(), "2");
  EXPECT_THAT(v2->versions(), ElementsAre("1", "2"));
  EXPECT_EQ((*registry)->Register(Pip("team", {"alpha"}))->environment().version(), "1");

  EXPECT_EQ((*registry)->Get("team", "")->environment().version(), "2");
  EXPECT_THAT((*registry)->Get("team", "1")->environment().pip_requirements(),
              ElementsAre("alpha"));
  auto missing = (*registry)->Get("team", "3");
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(std::string(missing.status().message()), HasSubstr("it has 1, 2"));

  // A registry opened again reads the same files.
  auto again = EnvironmentRegistry::Open(dir / "environments");
  auto list = (*again)->List();
  ASSERT_TRUE(list.ok());
  std::vector<std::string> names;
  for (const auto& e : *list)
    names.push_back(e.environment().name() + ":" + e.environment().version());
  EXPECT_THAT(names, ElementsAre("AzureML-Minimal:1", "amld-python3:1", "team:2"));
}

TEST(EnvRegistryTest, CuratedNamesResolveAndCannotBeRegistered) {
  TempDir dir;
  auto registry = *EnvironmentRegistry::Open(dir / "environments");
  auto minimal = registry->Get("AzureML-Minimal", "");
  ASSERT_TRUE(minimal.ok()) << minimal.status();
  EXPECT_TRUE(minimal->curated());
  EXPECT_TRUE(minimal->environment().user_managed_dependencies());
  EXPECT_EQ(registry->Get("amld-python3", "2").status().code(), absl::StatusCode::kNotFound);
  Environment mine;
  mine.set_name("AzureML-Minimal");
  mine.set_user_managed_dependencies(true);
  EXPECT_EQ(registry->Register(mine).status().code(), absl::StatusCode::kAlreadyExists);
  auto unknown = registry->Get("AzureML-TensorFlow-2.3-GPU", "");
  EXPECT_EQ(unknown.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(std::string(unknown.status().message()),
              HasSubstr("curated environments AzureML-Minimal, amld-python3"));
}

TEST(EnvRegistryTest, BadNamesAndSpecsAreRefused) {
  TempDir dir;
  auto registry = *EnvironmentRegistry::Open(dir / "environments");
  for (const char* name : {"", "../x", ".hidden", "-x", "a b"}) {
    EXPECT_EQ(registry->Register(Pip(name, {"alpha"})).status().code(),
              absl::StatusCode::kInvalidArgument)
        << name;
  }
  auto bad = registry->Register(Pip("bad", {"-r other.txt"}));
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(bad.status().message()), HasSubstr("names another file"));
}

}  // namespace
}  // namespace amld::daemon

#include "daemon/envs/env_spec.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace amld::daemon {
namespace {

using amld::v1::Environment;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

Environment Pip(std::vector<std::string> lines) {
  Environment env;
  for (std::string& l : lines) env.add_pip_requirements(std::move(l));
  return env;
}

TEST(EnvSpecTest, ManagedMeansPackagesOrAPythonVersion) {
  Environment env;
  EXPECT_FALSE(IsManagedEnvironment(env));
  env.set_user_managed_dependencies(true);
  env.set_interpreter_path("/usr/bin/python3");
  EXPECT_FALSE(IsManagedEnvironment(env));
  EXPECT_TRUE(IsManagedEnvironment(Pip({"numpy"})));
  Environment conda;
  conda.add_conda_packages("python=3.11");
  EXPECT_TRUE(IsManagedEnvironment(conda));
}

TEST(EnvSpecTest, CommentsBlanksAndOrderDoNotChangeTheDigest) {
  auto a = SpecFromEnvironment(Pip({"# pinned", "beta==1.0", "", "alpha  >=2  # why"}), false);
  auto b = SpecFromEnvironment(Pip({"alpha >=2", "beta==1.0", "alpha >=2"}), false);
  ASSERT_TRUE(a.ok()) << a.status();
  ASSERT_TRUE(b.ok()) << b.status();
  EXPECT_THAT(a->pip_requirements, ElementsAre("alpha >=2", "beta==1.0"));
  EXPECT_EQ(SpecDigest(*a), SpecDigest(*b));
  EXPECT_EQ(SpecDigest(*a).size(), 64u);
  EXPECT_EQ(ShortDigest(SpecDigest(*a)).size(), 12u);
  auto c = SpecFromEnvironment(Pip({"alpha>=2", "beta==1.1"}), false);
  EXPECT_NE(SpecDigest(*a), SpecDigest(*c));
  // A URL fragment is not a comment.
  auto d = SpecFromEnvironment(Pip({"git+https://host/x.git#egg=x"}), false);
  EXPECT_THAT(d->pip_requirements, ElementsAre("git+https://host/x.git#egg=x"));
}

TEST(EnvSpecTest, OptionsAreWrittenOneWay) {
  auto s = SpecFromEnvironment(
      Pip({"-i https://a/simple", "--extra-index-url=https://b/simple", "-f /srv/wheels",
           "--no-index", "--editable /src/pkg", "-e git+https://h/r.git#egg=r", "pkg"}),
      false);
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_THAT(s->pip_options,
              ElementsAre("--index-url https://a/simple", "--extra-index-url https://b/simple",
                          "--find-links /srv/wheels", "--no-index", "-e /src/pkg",
                          "-e git+https://h/r.git#egg=r"));
  EXPECT_EQ(RequirementsFile(*s),
            "--index-url https://a/simple\n--extra-index-url https://b/simple\n"
            "--find-links /srv/wheels\n--no-index\n-e /src/pkg\n-e git+https://h/r.git#egg=r\n"
            "pkg\n");
}

TEST(EnvSpecTest, RefusesWhatItCannotHashOrDoes) {
  struct Case {
    std::string line, says;
  };
  for (const Case& c : std::vector<Case>{
           {"-r other.txt", "names another file"},
           {"--constraint c.txt", "names another file"},
           {"-e ./pkg", "absolute path"},
           {"--user", "option --user is not supported"},
           {"--index-url", "exactly one value"},
       }) {
    auto s = SpecFromEnvironment(Pip({c.line}), false);
    EXPECT_EQ(s.status().code(), absl::StatusCode::kInvalidArgument) << c.line;
    EXPECT_THAT(std::string(s.status().message()), HasSubstr(c.says)) << c.line;
  }
  auto nul = SpecFromEnvironment(Pip({std::string("a\0b", 3)}), false);
  EXPECT_EQ(nul.status().code(), absl::StatusCode::kInvalidArgument);
  Environment both = Pip({"numpy"});
  both.set_user_managed_dependencies(true);
  auto ignored = SpecFromEnvironment(both, false);
  EXPECT_EQ(ignored.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(ignored.status().message()), HasSubstr("user_managed_dependencies"));
}

TEST(EnvSpecTest, CondaPythonAndPipBuildAsAVenvOthersNeedACondaTool) {
  Environment env;
  env.add_conda_packages("python=3.11");
  env.add_conda_packages("pip=23.2");
  env.add_conda_channels("conda-forge");
  env.add_pip_requirements("alpha");
  auto s = SpecFromEnvironment(env, false);
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_EQ(s->python_version, "3.11");
  EXPECT_EQ(BaseInterpreter(*s), "python3.11");
  EXPECT_THAT(s->pip_requirements, ElementsAre("alpha", "pip==23.2"));
  EXPECT_FALSE(s->needs_conda());
  EXPECT_TRUE(s->conda_channels.empty());  // nothing comes from a channel

  env.add_conda_packages("numpy=1.26");
  env.add_conda_packages("scipy");
  auto refused = SpecFromEnvironment(env, false);
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(refused.status().message()),
              HasSubstr("conda packages numpy=1.26, scipy need a conda tool"));
  EXPECT_THAT(std::string(refused.status().message()), HasSubstr("environments.conda_path"));
  auto with_tool = SpecFromEnvironment(env, true);
  ASSERT_TRUE(with_tool.ok()) << with_tool.status();
  EXPECT_THAT(with_tool->conda_packages, ElementsAre("numpy=1.26", "scipy"));
  EXPECT_THAT(with_tool->conda_channels, ElementsAre("conda-forge"));
  EXPECT_THAT(CanonicalText(*with_tool),
              HasSubstr("conda-channel conda-forge\nconda numpy=1.26\n"));
}

TEST(EnvSpecTest, PythonVersionsMustBeExactAndAgree) {
  Environment env;
  env.set_python_version("3.11");
  env.add_conda_packages("python=3.10");
  EXPECT_THAT(std::string(SpecFromEnvironment(env, false).status().message()),
              HasSubstr("already says 3.11"));
  Environment range;
  range.add_conda_packages("python>=3.9");
  EXPECT_EQ(SpecFromEnvironment(range, false).status().code(), absl::StatusCode::kInvalidArgument);
  Environment bad;
  bad.set_python_version("three");
  EXPECT_EQ(SpecFromEnvironment(bad, false).status().code(), absl::StatusCode::kInvalidArgument);
  Environment patch;
  patch.set_python_version("3.11.7");
  auto s = SpecFromEnvironment(patch, false);
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(BaseInterpreter(*s), "python3.11");
  EXPECT_EQ(BaseInterpreter(EnvironmentSpec{}), "python3");
}

TEST(EnvSpecTest, OnlyHashPinnedSpecsDetermineTheirResult) {
  auto spec = [](std::vector<std::string> pip, std::vector<std::string> options = {}) {
    EnvironmentSpec s;
    s.pip_requirements = std::move(pip);
    s.pip_options = std::move(options);
    return s;
  };
  const std::string hash = "--hash=sha256:0123456789abcdef";
  EXPECT_TRUE(DeterminesItsResult(spec({})));  // a Python version alone
  EXPECT_TRUE(DeterminesItsResult(spec({"alpha==1.0 " + hash})));
  EXPECT_TRUE(DeterminesItsResult(spec({"alpha[gpu]==1.0 " + hash + " --hash=sha512:ff"},
                                       {"--index-url https://x/simple", "--no-index"})));
  EXPECT_TRUE(DeterminesItsResult(spec({"alpha==1.0 ; python_version > '3' " + hash})));
  EXPECT_TRUE(DeterminesItsResult(spec({"alpha==1.0 --hash sha256:00ff"})));
  EXPECT_FALSE(DeterminesItsResult(spec({"alpha==1.0"})));             // no hash
  EXPECT_FALSE(DeterminesItsResult(spec({"alpha " + hash})));          // no version
  EXPECT_FALSE(DeterminesItsResult(spec({"alpha>=1.0 " + hash})));     // a range
  EXPECT_FALSE(DeterminesItsResult(spec({"alpha==1.* " + hash})));     // a wildcard
  EXPECT_FALSE(DeterminesItsResult(spec({"alpha==1.0,!=1.1 " + hash})));
  EXPECT_FALSE(DeterminesItsResult(spec({"alpha===1.0 " + hash})));
  EXPECT_FALSE(DeterminesItsResult(spec({"alpha==1.0 --hash=md5:00ff"})));
  EXPECT_FALSE(DeterminesItsResult(spec({"alpha==1.0 --hash=sha256:xyz"})));
  EXPECT_FALSE(DeterminesItsResult(spec({"alpha==1.0 " + hash, "beta"})));  // one unpinned
  EXPECT_FALSE(DeterminesItsResult(spec({"alpha==1.0 " + hash}, {"-e /src/alpha"})));
  EnvironmentSpec conda = spec({"alpha==1.0 " + hash});
  conda.conda_packages = {"numpy"};
  EXPECT_FALSE(DeterminesItsResult(conda));
}

}  // namespace
}  // namespace amld::daemon

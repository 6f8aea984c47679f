// What every end-to-end test shares: the paths of the real binaries, a
// fixture that starts a real `amld` with `aml daemon start` on a temp data
// dir and socket and stops it after the test (cancelling runs a failed test
// left going, and printing amld.log when the test failed), and small helpers
// for `aml` invocations and their JSON.
//
// Waiting is always "until it happens, with a generous limit" (Eventually,
// tests/testing/test_util.h); nothing here asserts on how long something took.
#pragma once

#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <filesystem>
#include <iostream>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "tests/testing/build_paths.h"
#include "tests/testing/subprocess.h"

namespace amld::e2e {

namespace fs = std::filesystem;
using amld::testing::Eventually;
using amld::testing::ProcessOptions;
using amld::testing::ProcessResult;
using amld::testing::ReadFile;
using nlohmann::json;

inline const std::string kBin = (testing::BinaryDir() / "bin").string();
inline const std::string kAml = kBin + "/aml";
inline const std::string kPython = "/usr/bin/python3";

inline std::string Describe(const ProcessResult& r) {
  return absl::StrCat("exit ", r.exit_code, r.timed_out ? " (timed out)" : "", "\nstdout:\n", r.out,
                      "\nstderr:\n", r.err);
}

// True once `pid` is gone, or is a zombie none of whose threads still runs.
// A killed multi-threaded process shows its leader as a zombie while the other
// threads are still exiting — and still hold its files (and so its locks) —
// so a zombie leader alone is not enough.
inline bool ProcessGone(pid_t pid) {
  if (::kill(pid, 0) != 0 && errno == ESRCH) return true;
  const std::string proc = "/proc/" + std::to_string(pid);
  const std::string stat = ReadFile(proc + "/stat");
  const size_t paren = stat.rfind(')');
  if (paren == std::string::npos || paren + 2 >= stat.size() || stat[paren + 2] != 'Z') {
    return false;
  }
  std::error_code ec;
  int threads = 0;
  for (fs::directory_iterator it(proc + "/task", ec), end; !ec && it != end; it.increment(ec)) {
    ++threads;
  }
  return threads <= 1;
}

// The statuses a run went through, oldest first (from `aml run show` JSON).
inline std::vector<std::string> Statuses(const json& run) {
  std::vector<std::string> out;
  for (const auto& t : run["history"]) out.push_back(t["status"].get<std::string>());
  return out;
}

// A real daemon per test. Derived fixtures call SetUpWorkspace() first in
// their SetUp and may add their own clean-up after calling TearDown().
class AmlDaemonTest : public ::testing::Test {
 protected:
  void SetUpWorkspace(const std::string& prefix) {
    ASSERT_TRUE(fs::exists(kBin + "/amld")) << "build the amld target first";
    ASSERT_TRUE(fs::exists(kBin + "/amld-shim")) << "build the amld-shim target first";
    dir_ = amld::testing::MakeTempDir(prefix);
    socket_ = dir_ / "run" / "amld.sock";
    data_ = dir_ / "data";
    project_ = dir_ / "proj";
    fs::create_directories(project_);
  }

  void TearDown() override {
    if (started_) {
      // A test that failed midway may leave runs going; they would outlive
      // the daemon under their supervisors.
      auto left = Aml({"--output", "json", "run", "list", "--status",
                       "QUEUED,PREPARING,STARTING,RUNNING,CANCEL_REQUESTED"});
      auto j = json::parse(left.out, nullptr, /*allow_exceptions=*/false);
      if (!j.is_discarded() && j.contains("runs")) {
        for (const auto& run : j["runs"]) {
          Aml({"run", "cancel", run["id"]});
          Aml({"run", "wait", run["id"]});
        }
      }
      auto r = Aml({"daemon", "stop"});
      EXPECT_EQ(r.exit_code, 0) << Describe(r);
      EXPECT_EQ(Aml({"daemon", "status"}).exit_code, 1) << "the daemon still answers";
    }
    if (HasFailure()) {
      std::cerr << "--- amld.log ---\n" << ReadFile(data_ / "amld.log") << "--- end ---\n";
    }
    fs::remove_all(dir_);
  }

  void StartDaemon(std::vector<std::string> extra = {}) {
    std::vector<std::string> args = {"daemon", "start", "--data-dir", data_.string()};
    args.insert(args.end(), extra.begin(), extra.end());
    auto r = Aml(args);
    ASSERT_EQ(r.exit_code, 0) << Describe(r);
    started_ = true;
    auto status = Aml({"daemon", "status"});
    ASSERT_EQ(status.exit_code, 0) << Describe(status);
  }

  ProcessOptions Options(fs::path cwd = {}) const {
    ProcessOptions o;
    o.unset_env = {"AMLD_SOCKET", "AMLD_DATA_DIR", "AMLD_MAX_SNAPSHOT_BYTES",
                   "AMLD_MAX_SNAPSHOT_FILES", "AMLD_NO_LOCAL_INGEST"};
    // The client's stat cache of this test only.
    o.env = {{"XDG_CACHE_HOME", (dir_ / "cache").string()}};
    if (upload_snapshots_) o.env.emplace_back("AMLD_NO_LOCAL_INGEST", "1");
    o.cwd = cwd.empty() ? dir_ : cwd;
    return o;
  }
  std::vector<std::string> Argv(std::vector<std::string> args) const {
    args.insert(args.begin(), {kAml, "--socket", socket_.string()});
    return args;
  }
  ProcessResult Aml(std::vector<std::string> args) const {
    return amld::testing::RunProcess(Argv(std::move(args)), Options());
  }
  json AmlJson(std::vector<std::string> args, int expected_exit = 0) const {
    args.insert(args.begin(), {"--output", "json"});
    auto r = Aml(args);
    EXPECT_EQ(r.exit_code, expected_exit) << Describe(r);
    auto j = json::parse(r.out, nullptr, /*allow_exceptions=*/false);
    EXPECT_FALSE(j.is_discarded()) << Describe(r);
    return j;
  }
  json Show(const std::string& id) const { return AmlJson({"run", "show", id}); }

  // Submits `script` of the project with `submit_flags` and `script_args`;
  // returns the run id.
  std::string Submit(const std::string& script, std::vector<std::string> submit_flags = {},
                     std::vector<std::string> script_args = {}) const {
    std::vector<std::string> args = {"run",           "submit", "-q", "-s", project_.string(),
                                     "--interpreter", kPython};
    args.insert(args.end(), submit_flags.begin(), submit_flags.end());
    args.push_back(script);
    if (!script_args.empty()) {
      args.push_back("--");
      args.insert(args.end(), script_args.begin(), script_args.end());
    }
    auto r = Aml(args);
    EXPECT_EQ(r.exit_code, 0) << Describe(r);
    std::string id = r.out;
    while (!id.empty() && id.back() == '\n') id.pop_back();
    EXPECT_EQ(id.find('\n'), std::string::npos) << "-q prints only the id: " << r.out;
    return id;
  }

  // Runs a 3-child grid sweep over --lr on `compute` from Azure ML's sweep
  // job YAML and waits for it; returns its children (`aml sweep show`, best
  // first) after checking that each completed as a child of the sweep. The
  // script prints "<placement_env> <value of that variable> lr <lr>" and
  // logs its loss with azureml's Run.log (amld ships its SDK to the target);
  // the best child is lr 0.01 with loss 0.5.
  json RunLrGridSweep(const std::string& compute, const std::string& placement_env) {
    fs::create_directories(project_ / "sweep-src");
    amld::testing::WriteFile(project_ / "sweep-src/train.py", R"(import argparse, os
from azureml.core import Run
p = argparse.ArgumentParser()
p.add_argument("--lr", type=float)
p.add_argument("--placement-env")
a = p.parse_args()
run = Run.get_context()
for step in (1, 2):
    run.log("loss", abs(a.lr - 0.01) + 1.0 / step, step=step)
print(a.placement_env, os.environ.get(a.placement_env), "lr", a.lr)
)");
    amld::testing::WriteFile(project_ / "sweep.yml", R"(type: sweep
experiment_name: remote-sweep
compute: azureml:)" + compute + R"(
trial:
  code: ./sweep-src
  command: python3 train.py --placement-env )" + placement_env + R"( --lr ${{search_space.lr}}
search_space:
  lr:
    type: choice
    values: [0.1, 0.01, 0.001]
sampling_algorithm: grid
objective:
  goal: minimize
  primary_metric: loss
limits:
  max_concurrent_trials: 3
)");
    auto submitted = Aml({"--output", "json", "sweep", "submit", "-f",
                          (project_ / "sweep.yml").string(), "--wait"});
    EXPECT_EQ(submitted.exit_code, 0) << Describe(submitted);
    if (submitted.exit_code != 0) return json::array();
    const std::string sweep = json::parse(submitted.out)["id"];
    json shown = AmlJson({"sweep", "show", sweep});
    EXPECT_EQ(shown["sweep"]["status"], "COMPLETED") << shown.dump();
    EXPECT_EQ(shown["children"].size(), 3u) << shown.dump();
    for (const json& child : shown["children"]) {
      json run = Show(child["run_id"]);
      EXPECT_EQ(run["status"], "COMPLETED") << run.dump();
      EXPECT_EQ(run["parent_run_id"], sweep) << run.dump();
    }
    if (!shown["children"].empty()) {
      EXPECT_EQ(shown["children"][0]["hyperparameters"], R"({"lr": 0.01})") << shown.dump();
      EXPECT_EQ(shown["children"][0]["best_primary_metric"], 0.5) << shown.dump();
    }
    return shown["children"];
  }

  // A training script in the azureml samples' style, unchanged: `from
  // azureml.core import Run`, run.log, run.log_list, run.tag, run.set_tags,
  // run.add_properties, run.upload_file to a name outside outputs/ and
  // run.register_model. Submitted to `compute`, whose machine has neither
  // amld's SDK nor (for all the script knows) gRPC on its path: amld ships
  // its Python there. Checks that it ran on amld's shipped copy without
  // importing gRPC or protobuf, and that its metrics, tags, properties,
  // uploaded file and model are the daemon's afterwards. Returns the run id.
  std::string RunSamplesStyleScript(const std::string& compute) {
    fs::create_directories(project_ / "samples-src");
    amld::testing::WriteFile(project_ / "samples-src/train.py", R"(import os, sys
from azureml.core import Run

run = Run.get_context()
for epoch in range(3):
    run.log("loss", 1.0 / (epoch + 1))
run.log_list("accuracy", [0.5, 0.75])
run.tag("framework", "sklearn")
run.set_tags({"stage": "dev"})
run.add_properties({"seed": "42"})
os.makedirs("outputs", exist_ok=True)
with open("outputs/model.pkl", "wb") as f:
    f.write(b"model bytes")
with open("confusion.txt", "w") as f:
    f.write("tp 3 fp 1\n")
run.upload_file("reports/confusion.txt", "confusion.txt")
run.register_model(model_name="samples-model", model_path="outputs/model.pkl",
                   tags={"area": "e2e"})
print("amld from", os.path.dirname(os.path.dirname(sys.modules["amld"].__file__)))
print("grpc or protobuf imported:",
      any(m.startswith(("grpc", "google.protobuf")) for m in sys.modules))
)");
    auto r = Aml({"run", "submit", "-q", "-s", (project_ / "samples-src").string(), "-c", compute,
                  "-e", "samples", "--interpreter", kPython, "train.py"});
    EXPECT_EQ(r.exit_code, 0) << Describe(r);
    std::string id = r.out;
    while (!id.empty() && id.back() == '\n') id.pop_back();
    if (id.empty()) return id;
    auto wait = Aml({"run", "wait", id, "--show-output"});
    EXPECT_EQ(wait.exit_code, 0) << Describe(wait);
    EXPECT_NE(wait.out.find("/.amld/python-"), std::string::npos)
        << "amld came from the target's copy of amld's Python: " << Describe(wait);
    EXPECT_NE(wait.out.find("grpc or protobuf imported: False"), std::string::npos)
        << Describe(wait);
    json run = Show(id);
    EXPECT_EQ(run["status"], "COMPLETED") << run.dump();
    EXPECT_EQ(run["tags"]["framework"], "sklearn") << run.dump();
    EXPECT_EQ(run["tags"]["stage"], "dev") << run.dump();
    EXPECT_EQ(run["properties"]["seed"], "42") << run.dump();
    json metrics = AmlJson({"run", "metrics", id});
    std::map<std::string, std::vector<double>> values;
    for (const json& m : metrics["metrics"]) {
      for (const json& v : m["values"]) values[m["name"]].push_back(v["value"]);
    }
    EXPECT_EQ(values["loss"], (std::vector<double>{1.0, 0.5, 1.0 / 3})) << metrics.dump();
    EXPECT_EQ(values["accuracy"], (std::vector<double>{0.5, 0.75})) << metrics.dump();
    const fs::path report = dir_ / (id + "-confusion.txt");
    auto got = Aml({"run", "download", id, "reports/confusion.txt", "-o", report.string()});
    EXPECT_EQ(got.exit_code, 0) << Describe(got);
    EXPECT_EQ(ReadFile(report), "tp 3 fp 1\n");
    json model = AmlJson({"model", "show", "samples-model"});
    EXPECT_EQ(model["run_id"], id) << model.dump();
    EXPECT_EQ(model["tags"]["area"], "e2e") << model.dump();
    const fs::path dl = dir_ / (id + "-model");
    auto m = Aml({"model", "download", "samples-model", "-d", dl.string()});
    EXPECT_EQ(m.exit_code, 0) << Describe(m);
    EXPECT_EQ(ReadFile(dl / "model.pkl"), "model bytes");
    return id;
  }

  // Managed environments without a network: wheels of two tiny packages
  // (amldtest-alpha depends on amldtest-beta; tests/python/wheelhouse.py)
  // built into `wheelhouse` (readable by every user: a target's login reads
  // it), and
  // the daemon's amld.yaml pointing pip at it alone (a MakeTempDir folder:
  // its parent is world-readable). Call before
  // StartDaemon. Also writes project_/envsrc/train.py (prints
  // "alpha sees beta 42" and "prefix <sys.prefix>"), project_/<conda_yml>
  // naming `pip_packages`, and returns a command job YAML for `compute`.
  fs::path WriteEnvironmentJob(const fs::path& wheelhouse, const std::string& compute,
                               const std::string& name,
                               const std::vector<std::string>& pip_packages) {
    if (!fs::exists(wheelhouse / "built")) {
      auto r = amld::testing::RunProcess(
          {kPython, (testing::SourceDir() / "tests/python/wheelhouse.py").string(),
           wheelhouse.string()},
          Options());
      EXPECT_EQ(r.exit_code, 0) << Describe(r);
      amld::testing::WriteFile(wheelhouse / "built", "");
      fs::permissions(wheelhouse, fs::perms::others_read | fs::perms::others_exec,
                      fs::perm_options::add);
      for (const auto& e : fs::recursive_directory_iterator(wheelhouse)) {
        fs::permissions(e.path(), fs::perms::others_read | fs::perms::others_exec,
                        fs::perm_options::add);
      }
      fs::create_directories(data_);
      amld::testing::WriteFile(
          data_ / "amld.yaml",
          absl::StrCat("environments:\n  no_index: true\n  find_links: [", wheelhouse.string(),
                       "]\n"));
    }
    fs::create_directories(project_ / "envsrc");
    amld::testing::WriteFile(project_ / "envsrc/train.py",
                             "import sys\nimport amldtest_alpha\nprint(amldtest_alpha.hello())\n"
                             "print('prefix', sys.prefix)\n");
    std::string conda = "dependencies:\n  - python\n  - pip\n  - pip:\n";
    for (const std::string& p : pip_packages) absl::StrAppend(&conda, "    - ", p, "\n");
    amld::testing::WriteFile(project_ / (name + ".conda.yml"), conda);
    const fs::path job = project_ / (name + ".job.yml");
    amld::testing::WriteFile(
        job, absl::StrCat("experiment_name: envs\ncode: ./envsrc\ncommand: python train.py\n"
                          "compute: azureml:", compute, "\nenvironment:\n  conda_file: ", name,
                          ".conda.yml\n"));
    return job;
  }

  pid_t DaemonPid() const {
    json info = AmlJson({"daemon", "status"});
    return static_cast<pid_t>(info["pid"].is_string() ? std::stoll(info["pid"].get<std::string>())
                                                      : info["pid"].get<int64_t>());
  }

  fs::path dir_, socket_, data_, project_;
  bool started_ = false;
  // True: `aml` walks and uploads snapshots itself (AMLD_NO_LOCAL_INGEST),
  // for the tests of that path; false: the daemon reads local folders.
  bool upload_snapshots_ = false;
};

}  // namespace amld::e2e

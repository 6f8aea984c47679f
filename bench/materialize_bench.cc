// amld_materialize_bench: how long a snapshot takes to become a run folder.
//
//   amld_materialize_bench SRC WORK [--reps N] [--threads a,b,...]
//
// Stores SRC in a fresh CAS under WORK, then, interleaved in each of N
// rounds (medians reported; this machine's disk is noisy), recreates it:
//   amld copy, T threads   storage::Materialize (reflink where the file
//                          system has it, else copy_file_range; no fsync)
//   hardlink (unsafe)      link(2) of each CAS object: NOT what amld does, a
//                          run could chmod and write through it into the CAS
//   cp -r SRC, cp -al SRC  the anchors
// and prints one JSON object: {"fs", "files", "bytes", "reflink", "results":
// [{"name", "median_s", "runs_s"}]}. Output folders are removed only at
// the end (with ext4's `discard` mount option, freeing blocks right before
// a measurement slows it down), and `sync` runs untimed before each.
#include <fcntl.h>
#include <linux/fs.h>
#include <spawn.h>
#include <sys/ioctl.h>
#include <sys/statfs.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <functional>
#include <iostream>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "storage/cas.h"
#include "storage/snapshot/snapshot.h"

namespace {

namespace fs = std::filesystem;
using amld::storage::ContentStore;
using amld::storage::Digest;

extern "C" char** environ;

int RunCommand(const std::vector<std::string>& argv) {
  std::vector<char*> args;
  for (const std::string& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  pid_t pid;
  if (::posix_spawnp(&pid, args[0], nullptr, nullptr, args.data(), environ) != 0) return -1;
  int status = 0;
  ::waitpid(pid, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

// The unsafe variant, for comparison only: every file a hardlink of its
// read-only CAS object.
absl::Status HardlinkTree(const ContentStore& cas, const Digest& d, const fs::path& dest,
                          int depth) {
  if (d == Digest::Empty()) return absl::OkStatus();
  auto bytes = cas.Read(d);
  if (!bytes.ok()) return bytes.status();
  auto dir = amld::storage::DecodeDirectory(*bytes, depth);
  if (!dir.ok()) return dir.status();
  for (const auto& f : dir->files()) {
    const Digest fd = amld::storage::FromProto(f.digest());
    const fs::path to = dest / f.name();
    if (fd == Digest::Empty()) {
      int out = ::open(to.c_str(), O_CREAT | O_EXCL | O_WRONLY, 0444);
      if (out >= 0) ::close(out);
      continue;
    }
    if (::link(cas.ObjectPath(fd).c_str(), to.c_str()) != 0) {
      return absl::InternalError(absl::StrCat("link ", to.string(), ": ", std::strerror(errno)));
    }
  }
  for (const auto& l : dir->symlinks()) {
    if (::symlink(l.target().c_str(), (dest / l.name()).c_str()) != 0) {
      return absl::InternalError("symlink failed");
    }
  }
  for (const auto& sub : dir->directories()) {
    fs::create_directory(dest / sub.name());
    auto s =
        HardlinkTree(cas, amld::storage::FromProto(sub.digest()), dest / sub.name(), depth + 1);
    if (!s.ok()) return s;
  }
  return absl::OkStatus();
}

std::string FsName(const fs::path& p) {
  struct statfs s;
  if (::statfs(p.c_str(), &s) != 0) return "unknown";
  switch (s.f_type) {
    case 0xEF53:
      return "ext4";
    case 0x58465342:
      return "xfs";
    case 0x9123683E:
      return "btrfs";
    case 0x01021994:
      return "tmpfs";
    default:
      return absl::StrCat("0x", absl::Hex(s.f_type));
  }
}

bool ReflinkWorks(const fs::path& work) {
  const fs::path a = work / "reflink-probe-a", b = work / "reflink-probe-b";
  int in = ::open(a.c_str(), O_CREAT | O_RDWR | O_TRUNC, 0644);
  int out = ::open(b.c_str(), O_CREAT | O_RDWR | O_TRUNC, 0644);
  bool ok = in >= 0 && out >= 0 && ::write(in, "probe", 5) == 5 && ::fsync(in) == 0 &&
            ::ioctl(out, FICLONE, in) == 0;
  if (in >= 0) ::close(in);
  if (out >= 0) ::close(out);
  fs::remove(a);
  fs::remove(b);
  return ok;
}

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  if (v.empty()) return 0;
  return v.size() % 2 ? v[v.size() / 2] : (v[v.size() / 2 - 1] + v[v.size() / 2]) / 2;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 3) {
    std::fprintf(stderr, "usage: %s SRC WORK [--reps N] [--threads 1,2,4]\n", argv[0]);
    return 2;
  }
  const fs::path src = fs::absolute(argv[1]);
  const fs::path work = fs::absolute(argv[2]);
  int reps = 5;
  std::vector<int> thread_counts = {
      1, static_cast<int>(std::max(1u, std::thread::hardware_concurrency())), 8};
  for (int i = 3; i + 1 < argc; i += 2) {
    std::string flag = argv[i];
    if (flag == "--reps") {
      (void)absl::SimpleAtoi(argv[i + 1], &reps);
    } else if (flag == "--threads") {
      thread_counts.clear();
      for (absl::string_view t : absl::StrSplit(argv[i + 1], ',')) {
        int n = 0;
        if (absl::SimpleAtoi(t, &n) && n > 0) thread_counts.push_back(n);
      }
    }
  }
  std::sort(thread_counts.begin(), thread_counts.end());
  thread_counts.erase(std::unique(thread_counts.begin(), thread_counts.end()), thread_counts.end());
  fs::remove_all(work);
  fs::create_directories(work);
  auto cas = ContentStore::Open(work / "cas");
  if (!cas.ok()) {
    std::cerr << cas.status() << "\n";
    return 1;
  }
  auto snap = amld::storage::BuildSnapshot(src);
  if (!snap.ok() || !amld::storage::StoreSnapshot(*snap, **cas).ok()) {
    std::cerr << "cannot store " << src << ": " << snap.status() << "\n";
    return 1;
  }
  std::vector<std::pair<std::string, std::function<bool(const fs::path&)>>> methods;
  for (int t : thread_counts) {
    methods.emplace_back(absl::StrCat("amld copy, ", t, " thread", t > 1 ? "s" : ""),
                         [&, t](const fs::path& dest) {
                           amld::storage::MaterializeOptions o;
                           o.threads = t;
                           return amld::storage::Materialize(**cas, snap->root, dest, o).ok();
                         });
  }
  methods.emplace_back("hardlink of CAS objects (unsafe)", [&](const fs::path& dest) {
    fs::create_directories(dest);
    return HardlinkTree(**cas, snap->root, dest, 0).ok();
  });
  methods.emplace_back("cp -r", [&](const fs::path& dest) {
    return RunCommand({"cp", "-r", src.string(), dest.string()}) == 0;
  });
  methods.emplace_back("cp -al", [&](const fs::path& dest) {
    return RunCommand({"cp", "-al", src.string(), dest.string()}) == 0;
  });
  std::map<std::string, std::vector<double>> times;
  int made = 0;
  for (int r = 0; r < reps; ++r) {
    for (const auto& [name, run] : methods) {
      const fs::path dest = work / "out" / std::to_string(made++);
      fs::create_directories(dest.parent_path());
      RunCommand({"sync"});
      const absl::Time start = absl::Now();
      const bool ok = run(dest);
      const double secs = absl::ToDoubleSeconds(absl::Now() - start);
      if (!ok) {
        std::cerr << name << " failed\n";
        return 1;
      }
      times[name].push_back(secs);
      std::cerr << name << ": " << secs << " s\n";
    }
  }
  fs::remove_all(work / "out");
  std::string results;
  for (const auto& [name, run] : methods) {
    std::vector<std::string> runs;
    for (double t : times[name]) runs.push_back(absl::StrCat(t));
    absl::StrAppend(&results, results.empty() ? "" : ",\n    ", "{\"name\": \"", name,
                    "\", \"median_s\": ", Median(times[name]), ", \"runs_s\": [",
                    absl::StrJoin(runs, ", "), "]}");
  }
  std::cout << "{\"fs\": \"" << FsName(work) << "\", \"files\": " << snap->files.size()
            << ", \"bytes\": " << snap->total_file_bytes
            << ", \"reflink\": " << (ReflinkWorks(work) ? "true" : "false")
            << ",\n  \"results\": [\n    " << results << "]}" << std::endl;
  fs::remove_all(work);
  return 0;
}

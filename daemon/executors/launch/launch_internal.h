// What the two halves of amld-launch share: launch_main.cc (options, the
// processes of one machine) and launch_cluster.cc (the processes of a Slurm
// job or of mpirun, and the task mode each of them runs in). libc only.
//
// Thread-safety: single-threaded program; none of this is thread-safe.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <string>
#include <vector>

namespace amld::daemon::launch {

struct Options {
  std::string kind;  // pytorch, tensorflow, mpi
  int processes = 0;
  int parameter_servers = 0;
  int nodes = 1;
  std::string srun;                // a Slurm job: srun's path
  std::vector<std::string> hosts;  // a Slurm job: each node's address, in node order
  bool task = false;               // one process under srun or mpirun
  std::string run_dir;
  int64_t grace_ns = 10'000'000'000;
  std::vector<char*> argv;  // null-terminated
};

struct Process {
  int rank = 0;
  pid_t pid = 0;
  bool done = false;
  int status = 0;                // from waitpid
  std::vector<std::string> env;  // NAME=VALUE added for this rank
};

[[noreturn]] void Die(const std::string& message);
int64_t NowNs();
int FreePort(bool any_address);
std::vector<std::string> SplitCommas(const char* text);
void RedirectToRankLog(const Options& o, int rank);
void LinkRankZeroLog(const Options& o);
// "rank 1 exited with code 3", "rank 2 was killed by signal 9 (SIGKILL)".
std::string Describe(int rank, int status);
bool Failed(int status);
int ExitCodeOf(int status);  // 128 + signal for a signal
// TF_CONFIG's "cluster" for tasks at `addresses` (host:port, workers first).
std::string TfCluster(const std::vector<std::string>& addresses, int parameter_servers);
// "TF_CONFIG=..." for task `rank`.
std::string TfConfig(const std::string& cluster, int rank, int workers);
// One entry of system_logs/amld-processes.json.
std::string ProcessJson(int rank, const std::string& node, pid_t pid, int status, bool done);
// Writes `text` to `path` through a rename; silent on failure.
void WriteFile(const std::string& path, const std::string& text);

// launch_cluster.cc: srun's tasks or mpirun's ranks, watched from here.
int RunOnCluster(const Options& o, const char* self);
// launch_cluster.cc: one task (--task).
int RunTask(const Options& o);

}  // namespace amld::daemon::launch

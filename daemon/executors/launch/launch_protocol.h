// The contract between the executors and amld-launch (launch_main.cc), the
// starter of a distributed run's processes on one machine. Both sides use
// this header; amld-launch is a static libc-only binary, so nothing here
// may use Abseil or other libraries.
//
// Invocation: the executor makes the run's command
//   amld-launch --kind=pytorch|tensorflow|mpi --processes=N
//               [--parameter-servers=M] --run-dir=DIR --grace-ns=N -- ARGV...
// (BuildLaunchArgv) and hands it to the supervisor as any other command.
// In a Slurm job (the batch script of the Slurm executor) it also gets
//   --nodes=N --srun=PATH --hosts=ADDR,...   (each node's address, in order)
// and starts the processes as srun's tasks (mpirun's ranks for MPI), each
// one this program again with --task; MASTER_ADDR is the first node's
// address. DIR is then the shared run folder every node sees.
// Files it leaves in DIR (all relative to the run folder):
//   user_logs/std_log_process_<rank>.txt  each process's output (rank 0's is
//                                         also user_logs/std_log.txt)
//   system_logs/amld-processes.json       [{"rank", "node", "pid",
//                                         "exit_code", "signal"}, ...]
//   system_logs/amld-launch-failure.txt   one line naming the process that
//                                         failed first ("rank 1 exited with
//                                         code 3", in a job "... on NODE"),
//                                         only when one did
//   system_logs/amld-process-<rank>.json  a task's own record while it runs
//                                         (merged into amld-processes.json)
//
// Thread-safety: pure functions.
#pragma once

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

namespace amld::daemon::launch {

inline constexpr char kLaunchBinaryName[] = "amld-launch";
inline constexpr char kProcessListPath[] = "system_logs/amld-processes.json";
inline constexpr char kFailurePath[] = "system_logs/amld-launch-failure.txt";
// What amld-launch exits with when it cannot start the processes at all.
inline constexpr int kLaunchErrorExit = 126;
// More processes than this on one machine is a mistake, not a plan.
inline constexpr int kMaxProcesses = 1024;

// user_logs/std_log_process_<rank>.txt, azureml's name for a rank's log.
inline std::string RankLogPath(int rank) {
  return "user_logs/std_log_process_" + std::to_string(rank) + ".txt";
}

// A task's record of itself (see the top).
inline std::string RankRecordPath(int rank) {
  return "system_logs/amld-process-" + std::to_string(rank) + ".json";
}

// The run's command wrapped in amld-launch (see the top).
inline std::vector<std::string> BuildLaunchArgv(const std::filesystem::path& launch_binary,
                                                const std::string& kind, int processes,
                                                int parameter_servers,
                                                const std::filesystem::path& run_dir,
                                                int64_t grace_ns,
                                                const std::vector<std::string>& argv) {
  std::vector<std::string> out = {launch_binary.string(), "--kind=" + kind,
                                  "--processes=" + std::to_string(processes)};
  if (parameter_servers > 0) {
    out.push_back("--parameter-servers=" + std::to_string(parameter_servers));
  }
  out.push_back("--run-dir=" + run_dir.string());
  out.push_back("--grace-ns=" + std::to_string(grace_ns));
  out.push_back("--");
  out.insert(out.end(), argv.begin(), argv.end());
  return out;
}

// The failure amld-launch recorded in `run_dir`, without its newline; ""
// when none (or the file cannot be read).
inline std::string ReadLaunchFailure(const std::filesystem::path& run_dir) {
  std::ifstream in(run_dir / kFailurePath);
  std::string line;
  std::getline(in, line);
  return line;
}

}  // namespace amld::daemon::launch

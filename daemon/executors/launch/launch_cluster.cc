// amld-launch's other half: processes it does not fork itself. In a Slurm
// job (--srun, --hosts, --nodes) they are srun's tasks on the job's nodes
// (PyTorch, TensorFlow) or mpirun's ranks inside the allocation (MPI); on
// one machine MPI's are mpirun's. Each process is this program in task mode
// (--task), which gives the process its rank variables, sends its output to
// its log, records its node, pid and exit, and names it in
// system_logs/amld-launch-failure.txt when it is the first to fail.
//
// The first failure stops the rest as on one machine: the watcher here sees
// the failure file appear (the run folder is shared by the nodes), sends
// srun or mpirun SIGTERM, which they pass to every process, and SIGKILL
// after the grace period; whatever is left when the job ends, Slurm kills.
// srun's own --kill-on-bad-exit would SIGKILL the others with no grace.
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <string>
#include <vector>

#include "daemon/executors/launch/launch_internal.h"
#include "daemon/executors/launch/launch_protocol.h"
#include "daemon/executors/shim/static_flags.h"

namespace amld::daemon::launch {
namespace {

std::string ReadSmallFile(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return "";
  std::string text;
  char buf[4096];
  ssize_t n;
  while ((n = ::read(fd, buf, sizeof buf)) > 0) text.append(buf, static_cast<size_t>(n));
  ::close(fd);
  while (!text.empty() && (text.back() == '\n' || text.back() == ' ')) text.pop_back();
  return text;
}

bool Exists(const std::string& path) { return ::access(path.c_str(), F_OK) == 0; }

// srun (PyTorch, TensorFlow in a Slurm job) or mpirun, with this program in
// task mode as every process, and the variables every task shares.
std::vector<std::string> ClusterCommand(const Options& o, const char* self,
                                        std::vector<std::string>* env) {
  const int per_node = o.processes / o.nodes;
  std::vector<std::string> args;
  if (o.kind == "mpi") {
    // Inside a Slurm allocation mpirun takes its nodes and slots from Slurm
    // and starts its daemons with srun; by slot, so P ranks per node.
    args = {"mpirun", "-np", std::to_string(o.processes), "--oversubscribe", "--bind-to", "none"};
    // Open MPI refuses to run as root unless told twice (flag or environment).
    if (::geteuid() == 0) args.push_back("--allow-run-as-root");
  } else {
    args = {o.srun,
            "--nodes=" + std::to_string(o.nodes),
            "--ntasks=" + std::to_string(o.processes),
            "--ntasks-per-node=" + std::to_string(per_node),
            "--kill-on-bad-exit=0",
            "--input=none"};
  }
  if (o.kind == "pytorch") {
    *env = {"MASTER_ADDR=" + o.hosts[0], "MASTER_PORT=" + std::to_string(FreePort(true)),
            "WORLD_SIZE=" + std::to_string(o.processes),
            "LOCAL_WORLD_SIZE=" + std::to_string(per_node)};
  } else if (o.kind == "tensorflow") {
    // srun places tasks in blocks: task r on node r / per_node. The ports
    // are free here; on the other nodes they are a guess.
    std::vector<std::string> addresses;
    for (int r = 0; r < o.processes; ++r) {
      addresses.push_back(o.hosts[static_cast<size_t>(r / per_node)] + ":" +
                          std::to_string(FreePort(true)));
    }
    *env = {"AMLD_LAUNCH_TF_CLUSTER=" + TfCluster(addresses, o.parameter_servers)};
  }
  args.insert(args.end(), {self, "--task", "--kind=" + o.kind,
                           "--processes=" + std::to_string(o.processes),
                           "--nodes=" + std::to_string(o.nodes),
                           "--parameter-servers=" + std::to_string(o.parameter_servers),
                           "--run-dir=" + o.run_dir, "--"});
  for (char* const* a = o.argv.data(); *a != nullptr; ++a) args.push_back(*a);
  return args;
}

// system_logs/amld-processes.json from the tasks' records; a task that left
// none (killed before it could write) is listed without pid or exit.
void MergeProcessRecords(const Options& o) {
  std::string json = "[";
  for (int r = 0; r < o.processes; ++r) {
    const std::string path = o.run_dir + "/" + RankRecordPath(r);
    std::string record = ReadSmallFile(path);
    if (record.empty()) record = ProcessJson(r, "", 0, 0, false);
    if (r > 0) json += ",\n ";
    json += record;
    ::unlink(path.c_str());
  }
  WriteFile(o.run_dir + "/" + kProcessListPath, json + "]\n");
}

const char* RankVariable(const Options& o) {
  // Under mpirun in a Slurm job, SLURM_PROCID is the node's MPI daemon's.
  static constexpr const char* kMpi[] = {"OMPI_COMM_WORLD_RANK", "PMIX_RANK", "PMI_RANK"};
  if (o.kind == "mpi") {
    for (const char* name : kMpi) {
      if (std::getenv(name) != nullptr) return name;
    }
    return nullptr;
  }
  return std::getenv("SLURM_PROCID") != nullptr ? "SLURM_PROCID" : nullptr;
}

// Records the first failure of the run (O_EXCL: the first writer wins).
void RecordFirstFailure(const Options& o, const std::string& why) {
  const std::string path = o.run_dir + "/" + kFailurePath;
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0644);
  if (fd < 0) return;
  const std::string line = why + "\n";
  (void)!::write(fd, line.data(), line.size());
  ::close(fd);
}

}  // namespace

int RunOnCluster(const Options& o, const char* self) {
  LinkRankZeroLog(o);
  std::vector<std::string> env;
  std::vector<std::string> args = ClusterCommand(o, self, &env);
  sigset_t wanted, old;
  sigemptyset(&wanted);
  for (int s : {SIGCHLD, SIGTERM, SIGINT, SIGHUP}) sigaddset(&wanted, s);
  ::sigprocmask(SIG_BLOCK, &wanted, &old);
  const pid_t child = ::fork();
  if (child < 0) Die(std::string("fork: ") + std::strerror(errno));
  if (child == 0) {
    ::sigprocmask(SIG_SETMASK, &old, nullptr);
    for (std::string& e : env) ::putenv(e.data());
    std::vector<char*> argv;
    for (std::string& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    ::execvp(argv[0], argv.data());
    std::fprintf(stderr, "amld-launch: cannot run %s%s: %s\n", argv[0],
                 o.kind == "mpi" ? " (install Open MPI: apt-get install openmpi-bin)" : "",
                 std::strerror(errno));
    ::_exit(kLaunchErrorExit);
  }
  std::fprintf(stderr, "amld-launch: started %d %s processes on %d node(s) with %s\n",
               o.processes, o.kind.c_str(), o.nodes, args[0].c_str());
  std::fflush(stderr);

  const std::string failure_path = o.run_dir + "/" + kFailurePath;
  bool stopping = false;  // asked to stop, or a process failed
  int64_t kill_at = 0;
  int status = 0;
  for (;;) {
    timespec timeout{0, 200'000'000};  // how often the failure file is looked for
    const int sig = ::sigtimedwait(&wanted, nullptr, &timeout);
    if (sig == SIGTERM || sig == SIGINT || sig == SIGHUP) {
      if (!stopping) kill_at = NowNs() + o.grace_ns;
      stopping = true;
      ::kill(child, SIGTERM);
    } else if (!stopping && Exists(failure_path)) {
      stopping = true;
      kill_at = NowNs() + o.grace_ns;
      std::fprintf(stderr, "amld-launch: %s; stopping the other processes\n",
                   ReadSmallFile(failure_path).c_str());
      std::fflush(stderr);
      ::kill(child, SIGTERM);
    }
    if (kill_at != 0 && NowNs() >= kill_at) {
      ::kill(child, SIGKILL);
      kill_at = 0;
    }
    if (::waitpid(child, &status, WNOHANG) == child) break;
  }
  MergeProcessRecords(o);
  if (Exists(failure_path) && !Failed(status)) return 1;
  return ExitCodeOf(status);
}

int RunTask(const Options& o) {
  const char* name = RankVariable(o);
  int64_t rank = 0;
  if (name == nullptr || !shim::ParseNonNegative(std::getenv(name), &rank))
    Die("task mode outside srun or mpirun: no rank set");
  const int r = static_cast<int>(rank);
  std::vector<std::string> env;
  if (o.kind == "pytorch") {
    auto slurm = [](const char* var) {
      const char* v = std::getenv(var);
      return std::string(v != nullptr ? v : "0");
    };
    env = {"RANK=" + std::to_string(r), "LOCAL_RANK=" + slurm("SLURM_LOCALID"),
           "NODE_RANK=" + slurm("SLURM_NODEID"), "GROUP_RANK=" + slurm("SLURM_NODEID")};
  } else if (o.kind == "tensorflow") {
    const char* cluster = std::getenv("AMLD_LAUNCH_TF_CLUSTER");
    if (cluster == nullptr) Die("task mode for TensorFlow without AMLD_LAUNCH_TF_CLUSTER");
    env = {TfConfig(cluster, r, o.processes - o.parameter_servers)};
  }
  const char* node_env = std::getenv("SLURMD_NODENAME");
  char host[256] = "localhost";
  if (node_env == nullptr) ::gethostname(host, sizeof host - 1);
  const std::string node = node_env != nullptr ? node_env : host;
  // Rank 0 writes to the run's log (std_log.txt, linked as rank 0's).
  if (r == 0) {
    const std::string path = o.run_dir + "/user_logs/std_log.txt";
    int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (fd < 0 || ::dup2(fd, STDOUT_FILENO) < 0 || ::dup2(fd, STDERR_FILENO) < 0)
      Die("cannot open " + path + ": " + std::strerror(errno));
    ::close(fd);
  } else {
    RedirectToRankLog(o, r);
  }

  sigset_t wanted, old;
  sigemptyset(&wanted);
  for (int s : {SIGCHLD, SIGTERM, SIGINT, SIGHUP}) sigaddset(&wanted, s);
  ::sigprocmask(SIG_BLOCK, &wanted, &old);
  const pid_t child = ::fork();
  if (child < 0) Die(std::string("fork: ") + std::strerror(errno));
  if (child == 0) {
    ::sigprocmask(SIG_SETMASK, &old, nullptr);
    for (std::string& e : env) ::putenv(e.data());
    ::execvp(o.argv[0], o.argv.data());
    std::fprintf(stderr, "amld-launch: rank %d: cannot run %s: %s\n", r, o.argv[0],
                 std::strerror(errno));
    ::_exit(127);
  }
  const std::string record = o.run_dir + "/" + RankRecordPath(r);
  WriteFile(record, ProcessJson(r, node, child, 0, false));
  bool stopping = false;
  int status = 0;
  for (;;) {
    const int sig = ::sigwaitinfo(&wanted, nullptr);
    if (sig == SIGTERM || sig == SIGINT || sig == SIGHUP) {
      stopping = true;
      ::kill(child, sig);
    }
    if (::waitpid(child, &status, WNOHANG) == child) break;
  }
  WriteFile(record, ProcessJson(r, node, child, status, true));
  if (Failed(status) && !stopping) {
    const std::string why = Describe(r, status) + " on " + node;
    std::fprintf(stderr, "amld-launch: %s\n", why.c_str());
    RecordFirstFailure(o, why);
  }
  return ExitCodeOf(status);
}

}  // namespace amld::daemon::launch

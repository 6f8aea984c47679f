// amld-launch: the several processes of one distributed run on one machine,
// as torchrun and mpirun start them (protocol: launch_protocol.h).
//
// The supervisor (amld-shim) starts this program as the run's process, so
// the shim's contract is unchanged: cancel and the time limit reach every
// process through the run's process group, exit.json records this
// program's exit, and whatever is left when it exits is killed.
//
//   --kind=pytorch    N processes, each with MASTER_ADDR, MASTER_PORT (free,
//                     chosen here), WORLD_SIZE, RANK, LOCAL_RANK,
//                     LOCAL_WORLD_SIZE, NODE_RANK and GROUP_RANK
//   --kind=tensorflow N = workers + parameter servers, each with TF_CONFIG
//                     naming free 127.0.0.1 ports for every task
//   --kind=mpi        runs `mpirun -np N` with this program in task mode
//                     as the program (--allow-run-as-root when root)
//   --srun=PATH --hosts=A,B --nodes=N   (a Slurm job) the processes are
//                     srun's tasks on the job's nodes, or mpirun's ranks
//                     inside the allocation (launch_cluster.cc)
//   --task            (under srun or mpirun) one process: its rank
//                     variables from Slurm's or MPI's, its output to its
//                     log, its pid and exit to its record (launch_cluster.cc)
//
// Output: rank 0 writes where the run's output goes (user_logs/std_log.txt),
// which is also named user_logs/std_log_process_0.txt (a hard link); rank R
// writes user_logs/std_log_process_R.txt.
//
// Failure, as torchrun: when a process fails (non-zero exit or a signal)
// while the others run, they get SIGTERM, then SIGKILL after the grace
// period; this program exits with the failed process's code (128 + signal
// for a signal) after writing the one-line reason to
// system_logs/amld-launch-failure.txt, which the executor makes the run's
// error ("rank 1 exited with code 3"). system_logs/amld-processes.json
// lists every process with its pid and exit. On SIGTERM or SIGINT (cancel,
// time limit) it passes the signal on, waits for the processes (SIGKILL
// after the grace period) and exits without naming a failure.
//
// Like the shim, it is single-threaded, waits for signals synchronously
// (sigtimedwait) and touches only libc.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <string>
#include <string_view>
#include <vector>

#include "daemon/executors/launch/launch_internal.h"
#include "daemon/executors/launch/launch_protocol.h"
#include "daemon/executors/shim/static_flags.h"

namespace amld::daemon::launch {

[[noreturn]] void Die(const std::string& message) {
  std::fprintf(stderr, "amld-launch: %s\n", message.c_str());
  std::fflush(stderr);
  ::_exit(kLaunchErrorExit);
}

Options ParseOptions(int argc, char** argv) {
  Options o;
  int i = 1;
  for (; i < argc; ++i) {
    std::string_view arg = argv[i];
    auto value_of = [&](std::string_view flag) { return shim::FlagValue(argv[i], flag); };
    int64_t n = 0;
    if (arg == "--") {
      ++i;
      break;
    } else if (const char* v = value_of("--kind=")) {
      o.kind = v;
    } else if (const char* v = value_of("--processes=")) {
      if (!shim::ParseNonNegative(v, &n) || n < 1 || n > kMaxProcesses)
        Die("bad --processes: " + std::string(v));
      o.processes = static_cast<int>(n);
    } else if (const char* v = value_of("--parameter-servers=")) {
      if (!shim::ParseNonNegative(v, &n) || n > kMaxProcesses)
        Die("bad --parameter-servers: " + std::string(v));
      o.parameter_servers = static_cast<int>(n);
    } else if (const char* v = value_of("--run-dir=")) {
      o.run_dir = v;
    } else if (const char* v = value_of("--grace-ns=")) {
      if (!shim::ParseNonNegative(v, &o.grace_ns)) Die("bad --grace-ns: " + std::string(v));
    } else if (const char* v = value_of("--nodes=")) {
      if (!shim::ParseNonNegative(v, &n) || n < 1 || n > kMaxProcesses)
        Die("bad --nodes: " + std::string(v));
      o.nodes = static_cast<int>(n);
    } else if (const char* v = value_of("--srun=")) {
      o.srun = v;
    } else if (const char* v = value_of("--hosts=")) {
      o.hosts = SplitCommas(v);
    } else if (arg == "--task") {
      o.task = true;
    } else {
      Die("unknown argument: " + std::string(arg));
    }
  }
  if (o.run_dir.empty() || o.run_dir[0] != '/') Die("--run-dir must be an absolute path");
  if (i >= argc) Die("no command after --");
  if (o.kind != "pytorch" && o.kind != "tensorflow" && o.kind != "mpi") {
    Die("--kind must be pytorch, tensorflow or mpi");
  }
  if (!o.task && o.processes < 1) Die("--processes is required");
  if (o.processes % o.nodes != 0) Die("--processes must be a multiple of --nodes");
  if (!o.srun.empty() && static_cast<int>(o.hosts.size()) != o.nodes) {
    Die("--hosts must name the address of each of the --nodes nodes");
  }
  if (o.srun.empty() && o.nodes > 1 && !o.task) Die("several nodes need --srun (a Slurm job)");
  if (o.kind == "tensorflow" && o.parameter_servers >= o.processes) {
    Die("a TensorFlow job needs at least one worker besides its parameter servers");
  }
  o.argv.assign(argv + i, argv + argc);
  o.argv.push_back(nullptr);
  return o;
}

int64_t NowNs() {
  timespec ts;
  ::clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
}

// A port nobody listens on now (on loopback, or on every address for
// processes on other nodes to reach). Another program may take it before
// the run's processes bind it — the same race torchrun accepts.
int FreePort(bool any_address) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) Die(std::string("socket: ") + std::strerror(errno));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(any_address ? INADDR_ANY : INADDR_LOOPBACK);
  socklen_t len = sizeof addr;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    Die(std::string("cannot find a free port: ") + std::strerror(errno));
  }
  ::close(fd);
  return ntohs(addr.sin_port);
}

std::vector<std::string> SplitCommas(const char* text) {
  std::vector<std::string> out;
  std::string item;
  for (const char* c = text;; ++c) {
    if (*c == ',' || *c == '\0') {
      if (!item.empty()) out.push_back(item);
      item.clear();
      if (*c == '\0') break;
    } else {
      item += *c;
    }
  }
  return out;
}

// Points this process's stdout and stderr at RANK's log (see the top).
void RedirectToRankLog(const Options& o, int rank) {
  const std::string path = o.run_dir + "/" + RankLogPath(rank);
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | O_NOFOLLOW, 0644);
  if (fd < 0 || ::dup2(fd, STDOUT_FILENO) < 0 || ::dup2(fd, STDERR_FILENO) < 0) {
    Die("cannot open " + path + ": " + std::strerror(errno));
  }
  ::close(fd);
}

// Rank 0's log is the run's own: give it its per-rank name too.
void LinkRankZeroLog(const Options& o) {
  const std::string log = o.run_dir + "/user_logs/std_log.txt";
  const std::string rank0 = o.run_dir + "/" + RankLogPath(0);
  if (::link(log.c_str(), rank0.c_str()) != 0 && errno != EEXIST) {
    Die("cannot link " + rank0 + " to " + log + ": " + std::strerror(errno));
  }
}

std::string Describe(int rank, int status) {
  if (WIFSIGNALED(status)) {
    const char* abbrev = ::sigabbrev_np(WTERMSIG(status));
    return "rank " + std::to_string(rank) + " was killed by signal " +
           std::to_string(WTERMSIG(status)) + (abbrev ? std::string(" (SIG") + abbrev + ")" : "");
  }
  return "rank " + std::to_string(rank) + " exited with code " + std::to_string(WEXITSTATUS(status));
}
std::string Describe(const Process& p) { return Describe(p.rank, p.status); }

bool Failed(int status) {
  return WIFSIGNALED(status) || (WIFEXITED(status) && WEXITSTATUS(status) != 0);
}
bool Failed(const Process& p) { return Failed(p.status); }

int ExitCodeOf(int status) {
  return WIFSIGNALED(status) ? 128 + WTERMSIG(status) : WEXITSTATUS(status);
}
int ExitCodeOf(const Process& p) { return ExitCodeOf(p.status); }

std::string TfCluster(const std::vector<std::string>& addresses, int parameter_servers) {
  const int workers = static_cast<int>(addresses.size()) - parameter_servers;
  auto list = [&](int from, int count) {
    std::string s = "[";
    for (int i = 0; i < count; ++i) {
      if (i > 0) s += ", ";
      s += "\"" + addresses[static_cast<size_t>(from + i)] + "\"";
    }
    return s + "]";
  };
  std::string cluster = "{\"worker\": " + list(0, workers);
  if (parameter_servers > 0) cluster += ", \"ps\": " + list(workers, parameter_servers);
  return cluster + "}";
}

std::string TfConfig(const std::string& cluster, int rank, int workers) {
  const bool worker = rank < workers;
  const int index = worker ? rank : rank - workers;
  return "TF_CONFIG={\"cluster\": " + cluster + ", \"task\": {\"type\": \"" +
         (worker ? "worker" : "ps") + "\", \"index\": " + std::to_string(index) + "}}";
}

std::string ProcessJson(int rank, const std::string& node, pid_t pid, int status, bool done) {
  return "{\"rank\": " + std::to_string(rank) + ", \"node\": \"" + node +
         "\", \"pid\": " + std::to_string(pid) + ", \"exit_code\": " +
         std::to_string(done && WIFEXITED(status) ? WEXITSTATUS(status) : -1) +
         ", \"signal\": " + std::to_string(done && WIFSIGNALED(status) ? WTERMSIG(status) : 0) +
         "}";
}

void WriteFile(const std::string& path, const std::string& text) {
  const std::string tmp = path + ".tmp";
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0644);
  if (fd < 0) return;
  bool ok = ::write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size());
  ok = ::close(fd) == 0 && ok;
  if (ok) ::rename(tmp.c_str(), path.c_str());
}

namespace {

std::vector<Process> PlanProcesses(const Options& o) {
  std::vector<Process> procs(static_cast<size_t>(o.processes));
  for (int r = 0; r < o.processes; ++r) procs[static_cast<size_t>(r)].rank = r;
  const std::string n = std::to_string(o.processes);
  if (o.kind == "pytorch") {
    const std::string port = std::to_string(FreePort(false));
    for (Process& p : procs) {
      const std::string r = std::to_string(p.rank);
      p.env = {"MASTER_ADDR=127.0.0.1", "MASTER_PORT=" + port,   "WORLD_SIZE=" + n, "RANK=" + r,
               "LOCAL_RANK=" + r,       "LOCAL_WORLD_SIZE=" + n, "NODE_RANK=0",     "GROUP_RANK=0"};
    }
  } else {  // tensorflow: workers first, then parameter servers
    std::vector<std::string> addresses;
    for (int i = 0; i < o.processes; ++i)
      addresses.push_back("127.0.0.1:" + std::to_string(FreePort(false)));
    const std::string cluster = TfCluster(addresses, o.parameter_servers);
    for (Process& p : procs) {
      p.env = {TfConfig(cluster, p.rank, o.processes - o.parameter_servers)};
    }
  }
  return procs;
}

void WriteProcessList(const Options& o, const std::vector<Process>& procs) {
  std::string json = "[";
  for (const Process& p : procs) {
    if (p.rank > 0) json += ",\n ";
    json += ProcessJson(p.rank, "localhost", p.pid, p.status, p.done);
  }
  WriteFile(o.run_dir + "/" + kProcessListPath, json + "]\n");
}

// Forks and watches the processes on this machine (see the top).
int Spawn(const Options& o) {
  std::vector<Process> procs = PlanProcesses(o);
  LinkRankZeroLog(o);
  sigset_t wanted, old;
  sigemptyset(&wanted);
  for (int s : {SIGCHLD, SIGTERM, SIGINT, SIGHUP}) sigaddset(&wanted, s);
  ::sigprocmask(SIG_BLOCK, &wanted, &old);
  for (Process& p : procs) {
    p.pid = ::fork();
    if (p.pid < 0) Die(std::string("fork: ") + std::strerror(errno));
    if (p.pid == 0) {
      ::sigprocmask(SIG_SETMASK, &old, nullptr);
      if (p.rank > 0) RedirectToRankLog(o, p.rank);
      for (std::string& e : p.env) ::putenv(e.data());
      ::execvp(o.argv[0], o.argv.data());
      std::fprintf(stderr, "amld-launch: rank %d: cannot run %s: %s\n", p.rank, o.argv[0],
                   std::strerror(errno));
      ::_exit(127);
    }
  }
  std::fprintf(stderr, "amld-launch: started %d %s processes\n", o.processes, o.kind.c_str());
  std::fflush(stderr);

  const Process* failure = nullptr;
  bool stopping = false;  // asked to stop (cancel, time limit)
  int64_t kill_at = 0;    // SIGKILL what is left at this time; 0: not yet
  int left = o.processes;
  auto signal_all = [&](int sig) {
    for (const Process& p : procs) {
      if (!p.done) ::kill(p.pid, sig);
    }
  };
  while (left > 0) {
    timespec timeout{1, 0};
    if (kill_at != 0) {
      const int64_t wait_ns = kill_at - NowNs();
      if (wait_ns <= 0) {
        signal_all(SIGKILL);
        kill_at = 0;
      } else {
        timeout = {static_cast<time_t>(wait_ns / 1'000'000'000),
                   static_cast<long>(wait_ns % 1'000'000'000)};
      }
    }
    const int sig = ::sigtimedwait(&wanted, nullptr, &timeout);
    if (sig == SIGTERM || sig == SIGINT || sig == SIGHUP) {
      stopping = true;
      signal_all(SIGTERM);
      if (kill_at == 0) kill_at = NowNs() + o.grace_ns;
    }
    int status = 0;
    pid_t pid;
    while ((pid = ::waitpid(-1, &status, WNOHANG)) > 0) {
      for (Process& p : procs) {
        if (p.pid != pid || p.done) continue;
        p.done = true;
        p.status = status;
        --left;
        if (Failed(p) && failure == nullptr && !stopping) {
          failure = &p;
          std::fprintf(stderr, "amld-launch: %s; stopping the other %d process(es)\n",
                       Describe(p).c_str(), left);
          std::fflush(stderr);
          signal_all(SIGTERM);
          kill_at = NowNs() + o.grace_ns;
        }
      }
    }
  }
  WriteProcessList(o, procs);
  if (failure != nullptr) {
    WriteFile(o.run_dir + "/" + kFailurePath, Describe(*failure) + "\n");
    return ExitCodeOf(*failure);
  }
  for (const Process& p : procs) {
    if (Failed(p)) return ExitCodeOf(p);  // stopped: the shim records the cancel
  }
  return 0;
}

}  // namespace
}  // namespace amld::daemon::launch

int main(int argc, char** argv) {
  using namespace amld::daemon::launch;
  Options o = ParseOptions(argc, argv);
  if (o.task) return RunTask(o);
  if (!o.srun.empty() || o.kind == "mpi") return RunOnCluster(o, argv[0]);
  return Spawn(o);
}

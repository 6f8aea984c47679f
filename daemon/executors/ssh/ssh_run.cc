#include "daemon/executors/ssh/ssh_run.h"

#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "base/shell_quote.h"
#include "base/status_macros.h"
#include "daemon/executors/launch/launch_protocol.h"
#include "daemon/executors/run_handle.h"
#include "daemon/executors/shim/shim_protocol.h"

namespace amld::daemon::ssh {

using base::ShellQuote;

// How often the remote tail checks whether the shim still runs.
constexpr char kTailPidInterval[] = "0.2";

std::string FormatHandle(const RemoteRun& r) {
  RunHandle h;
  h.Set("host", r.host)
      .Set("port", static_cast<int64_t>(r.port))
      .Set("user", r.user)
      .Set("remote_dir", r.remote_dir);
  SetShimIdentity(ShimIdentity{static_cast<pid_t>(r.shim_pid), r.shim_start_time, r.boot_id}, h);
  return h.Encode();
}

absl::StatusOr<RemoteRun> ParseHandle(const std::string& run_id, const std::string& handle) {
  AMLD_ASSIGN_OR_RETURN(RunHandle h, RunHandle::Parse("an SSH executor", run_id, handle));
  RemoteRun r;
  AMLD_ASSIGN_OR_RETURN(r.host, h.String("host"));
  AMLD_ASSIGN_OR_RETURN(r.user, h.String("user"));
  AMLD_ASSIGN_OR_RETURN(r.remote_dir, h.String("remote_dir"));
  AMLD_ASSIGN_OR_RETURN(int64_t port, h.Int("port"));
  r.port = static_cast<int>(port);
  AMLD_ASSIGN_OR_RETURN(ShimIdentity shim, GetShimIdentity(h, /*boot_id_required=*/true));
  r.shim_pid = shim.pid;
  r.shim_start_time = shim.start_time;
  r.boot_id = shim.boot_id;
  if (r.remote_dir.empty() || r.remote_dir.front() != '/') return h.Invalid("no remote folder");
  return r;
}

std::string PrepareHostScript(const std::string& configured, const std::string& python_folder) {
  std::string workdir = configured.empty() ? kDefaultWorkdir : configured;
  if (absl::StartsWith(workdir, "~/")) workdir = workdir.substr(2);
  if (workdir == "~") workdir = ".";
  const std::string tools = kRemoteToolsDir;
  std::string s = absl::StrCat("set -e\nmkdir -p -- ", ShellQuote(workdir), "\ncd -- ",
                               ShellQuote(workdir), "\npwd -P\nmkdir -p ", tools, "\n");
  for (const char* tool : kRemoteTools) {
    const std::string path = absl::StrCat(tools, "/", tool);
    absl::StrAppend(&s, "if [ -x ", path, " ]; then printf '", tool, " %s\\n' \"$(cat ", path,
                    ".sha256 2>/dev/null || true)\"; fi\n");
  }
  if (!python_folder.empty()) {
    const std::string dir = absl::StrCat(kRemotePythonParent, "/", python_folder);
    absl::StrAppend(&s, "if [ -d ", ShellQuote(dir), " ]; then echo ", kRemotePythonKey, " ",
                    ShellQuote(python_folder), "; fi\n");
  }
  return s;
}

absl::StatusOr<PreparedHost> ParsePrepareHostAnswer(const std::string& out,
                                                    const std::string& host_name) {
  std::vector<std::string> lines = absl::StrSplit(out, '\n', absl::SkipEmpty());
  if (lines.empty() || lines[0].front() != '/') {
    return absl::InternalError(
        absl::StrCat("unexpected answer from ", host_name, " about its work folder: ", out));
  }
  PreparedHost host;
  host.remote_workdir = lines[0];
  for (size_t i = 1; i < lines.size(); ++i) {
    std::pair<std::string, std::string> tool =
        absl::StrSplit(absl::StripAsciiWhitespace(lines[i]), absl::MaxSplits(' ', 1));
    if (!tool.second.empty()) host.installed[tool.first] = tool.second;
  }
  return host;
}

std::string InstallToolScript(const std::string& tmp, const std::string& dir,
                              const std::string& name, const std::string& digest) {
  const std::string path = ShellQuote(absl::StrCat(dir, "/", name));
  const std::string sum = absl::StrCat(dir, "/", name, ".sha256");
  return absl::StrCat("set -e\nmv -f ", ShellQuote(tmp), " ", path, "\nprintf '%s\\n' ",
                      ShellQuote(digest), " > ", ShellQuote(sum + ".tmp"), "\nmv -f ",
                      ShellQuote(sum + ".tmp"), " ", ShellQuote(sum), "\n");
}

std::string InstallFolderScript(const std::string& tmp, const std::string& dir) {
  return absl::StrCat("if [ -d ", ShellQuote(dir), " ]; then rm -rf -- ", ShellQuote(tmp),
                      "; else mv -T -- ", ShellQuote(tmp), " ", ShellQuote(dir),
                      " 2>/dev/null || rm -rf -- ", ShellQuote(tmp), "; fi\n[ -d ",
                      ShellQuote(dir), " ]\n");
}

std::string LaunchScript(const LaunchSpec& spec, const std::string& remote_dir,
                         const std::string& tools, const std::string& python_dir) {
  const std::string shim = absl::StrCat(tools, "/amld-shim");
  const std::string local_prefix = spec.run_dir.string();
  const bool with_python = spec.run_python && !python_dir.empty();
  bool python_path_set = false;
  std::vector<std::string> env_words;
  for (const auto& [name, value] : spec.run_env) {
    std::string v = value;
    if (v == local_prefix || absl::StartsWith(v, local_prefix + "/")) {
      v = remote_dir + v.substr(local_prefix.size());
    }
    if (with_python && name == "PYTHONPATH") {
      v = v.empty() ? python_dir : absl::StrCat(python_dir, ":", v);
      python_path_set = true;
    }
    env_words.push_back(ShellQuote(absl::StrCat(name, "=", v)));
  }
  if (with_python && !python_path_set) {
    // First on the login's own PYTHONPATH, expanded by the host's shell.
    env_words.push_back(absl::StrCat(ShellQuote(absl::StrCat("PYTHONPATH=", python_dir)),
                                     "\"${PYTHONPATH:+:$PYTHONPATH}\""));
  }
  std::vector<std::string> argv = spec.argv;
  if (!spec.processes.kind.empty()) {  // several processes: under amld-launch, as locally
    argv = launch::BuildLaunchArgv(absl::StrCat(tools, "/", launch::kLaunchBinaryName),
                                   spec.processes.kind, spec.processes.count,
                                   spec.processes.parameter_servers, remote_dir,
                                   absl::ToInt64Nanoseconds(spec.kill_grace), spec.argv);
  }
  std::vector<std::string> argv_words;
  for (const std::string& a : argv) argv_words.push_back(ShellQuote(a));
  const std::string rd = "\"$rd\"";
  return absl::StrCat("# Written by amld's SSH executor: starts run ", spec.run_id,
                      " under amld-shim.\n", "rd=", ShellQuote(remote_dir), "\n",
                      "printf 'boot %s\\n' \"$(cat /proc/sys/kernel/random/boot_id)\"\n", ": >> ",
                      rd, "/metrics.jsonl\n", ": >> ", rd, "/system_logs/", shim::kShimLogName,
                      "\n", "if mkdir ", rd, "/", kLaunchLockName, " 2>/dev/null; then\n",
                      "  cd / && env -- ", absl::StrJoin(env_words, " "), " ", ShellQuote(shim),
                      " --run-dir=", rd,
                      " --max-duration-ns=", absl::ToInt64Nanoseconds(spec.max_duration),
                      " --grace-ns=", absl::ToInt64Nanoseconds(spec.kill_grace), " -- ",
                      absl::StrJoin(argv_words, " "), " 3>&1 >/dev/null 2>>", rd, "/system_logs/",
                      shim::kShimLogName, " </dev/null | tee ", rd, "/", kLaunchLockName,
                      "/ready\n", "else\n", "  i=0\n", "  while [ ! -s ", rd, "/", kLaunchLockName,
                      "/ready ] && [ $i -lt 300 ]; do "
                      "sleep 0.1; i=$((i+1)); done\n",
                      "  cat ", rd, "/", kLaunchLockName, "/ready\n", "fi\n");
}

absl::StatusOr<RemoteRun> ParseLaunchAnswer(const CommandResult& answer, RemoteRun run,
                                            const std::string& host_name) {
  for (absl::string_view line : absl::StrSplit(answer.out, '\n', absl::SkipEmpty())) {
    if (absl::ConsumePrefix(&line, "boot ")) {
      run.boot_id = std::string(line);
    } else if (absl::ConsumePrefix(&line, "error ")) {
      return absl::FailedPreconditionError(
          absl::StrCat("amld-shim on ", host_name, " could not start the run: ", line));
    } else if (absl::StatusOr<ShimIdentity> id = ParseShimOkLine(line);
               id.ok() && !run.boot_id.empty()) {
      run.shim_pid = id->pid;
      run.shim_start_time = id->start_time;
      return run;
    }
  }
  return absl::FailedPreconditionError(
      absl::StrCat("could not start amld-shim on ", host_name, ": ", answer.Describe()));
}

std::string FindLaunchScript(const std::string& remote_dir) {
  const std::string lock = absl::StrCat("\"$rd\"/", kLaunchLockName);
  return absl::StrCat("rd=", ShellQuote(remote_dir), "\n",
                      "printf 'boot %s\\n' \"$(cat /proc/sys/kernel/random/boot_id)\"\n",
                      "if [ -d ", lock, " ]; then\n", "  i=0\n", "  while [ ! -s ", lock,
                      "/ready ] && [ $i -lt 300 ]; do sleep 0.1; i=$((i+1)); done\n", "  cat ",
                      lock, "/ready\n", "else\n", "  echo none\n", "fi\n");
}

absl::StatusOr<RemoteRun> ParseFindLaunchAnswer(const CommandResult& answer, RemoteRun run,
                                                const std::string& host_name) {
  if (answer.ok()) {
    for (absl::string_view line : absl::StrSplit(answer.out, '\n', absl::SkipEmpty())) {
      if (line == "none") {
        return absl::NotFoundError(absl::StrCat("nothing of the run was started in ",
                                                run.remote_dir, " on ", host_name));
      }
    }
  }
  return ParseLaunchAnswer(answer, std::move(run), host_name);
}

std::string ShimAliveTest(const RemoteRun& r) {
  return absl::StrCat("[ \"$(cat /proc/sys/kernel/random/boot_id)\" = ", ShellQuote(r.boot_id),
                      " ] && [ \"$(sed 's/.*) //' /proc/", r.shim_pid,
                      "/stat 2>/dev/null | cut -d' ' -f20)\" = ", r.shim_start_time, " ]");
}

std::string ProbeScript(const RemoteRun& r) {
  const std::string rd = ShellQuote(r.remote_dir);
  return absl::StrCat("if ", ShimAliveTest(r), "; then s=alive; else s=ended; fi\necho $s\n",
                      "if [ -d ", rd, "/wd ]; then echo wd; else echo nowd; fi\n",
                      "if [ $s = ended ]; then cat ", rd, "/", shim::kExitFileName,
                      " 2>/dev/null; fi\nexit 0\n");
}

std::string CancelScript(const RemoteRun& r) {
  return absl::StrCat("if ", ShimAliveTest(r), "; then kill -TERM ", r.shim_pid, "; fi\nexit 0\n");
}

std::string CleanUpScript(const RemoteRun& r) {
  const std::string rd = ShellQuote(r.remote_dir);
  return absl::StrCat("rm -rf -- ", rd, "/wd ", rd, "/", kLaunchLockName);
}

absl::StatusOr<Probe> ParseProbe(const CommandResult& r) {
  std::vector<std::string> lines = absl::StrSplit(r.out, absl::MaxSplits('\n', 2));
  if (!r.ok() || lines.size() < 2 || (lines[0] != "alive" && lines[0] != "ended")) {
    return absl::InternalError(absl::StrCat("unexpected answer from the host: ", r.Describe()));
  }
  Probe p;
  p.alive = lines[0] == "alive";
  p.wd_present = lines[1] == "wd";
  if (!p.alive && lines.size() == 3 && !absl::StripAsciiWhitespace(lines[2]).empty()) {
    p.exit_json = lines[2];
  }
  return p;
}

std::string TailCommand(const RemoteRun& run, int64_t offset, bool follow) {
  const std::string log = ShellQuote(absl::StrCat(run.remote_dir, "/", shim::kStdLogPath));
  if (!follow) return absl::StrCat("exec tail -c +", offset + 1, " -- ", log);
  return absl::StrCat("exec tail -c +", offset + 1, " -F -s ", kTailPidInterval,
                      " --pid=", run.shim_pid, " -- ", log);
}

}  // namespace amld::daemon::ssh

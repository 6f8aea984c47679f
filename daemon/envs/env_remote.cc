#include "daemon/envs/env_remote.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "base/shell_quote.h"

namespace amld::daemon {

using base::ShellQuote;

std::string RemoteEnvironmentScript(const EnvironmentSpec& spec, const EnvironmentOptions& options,
                                    bool is_script) {
  const std::string digest = SpecDigest(spec);
  const std::string shorter = ShortDigest(digest);
  std::vector<std::string> pip = {"\"$b/bin/python\"", "-m", "pip", "install",
                                  "--disable-pip-version-check", "--no-input"};
  for (const std::string& o : PipIndexOptions(options)) pip.push_back(ShellQuote(o));
  pip.insert(pip.end(), {"-r", "\"$b/amld-requirements.txt\""});
  std::string s = absl::StrCat(
      "# amld: the managed environment ", shorter, " (daemon/envs/env_remote.h)\n",
      "unset PYTHONHOME\n",
      "short=", shorter, "\n",
      "cache=${", kRemoteEnvCacheVar, ":?}\n",
      "fail() { echo \"amld: environment $short could not be built on $(hostname): $1\" >&2; "
      "exit ", kRemoteBuildFailedExit, "; }\n",
      "step() { echo \"amld: \\$ $*\"; \"$@\"; }\n",
      // <run folder>/../envs as a plain path: venv scripts name their folder.
      "mkdir -p \"$cache\" && cache=$(cd \"$cache\" && pwd -P) || fail \"cannot create $cache\"\n",
      "d=\"$cache\"/", digest, "\n",
      "if [ ! -x \"$d/bin/python\" ]; then\n",
      "  command -v flock >/dev/null 2>&1 || fail \"flock(1) (util-linux) is not installed\"\n",
      "  exec 9>>\"$cache/.lock-", digest, "\" || fail \"cannot open its lock in $cache\"\n",
      "  if ! flock -n 9; then\n",
      "    echo \"amld: environment $short is being built by another run on this target; "
      "waiting for it\"\n",
      "    flock 9 || fail \"cannot lock $cache/.lock-", digest, "\"\n",
      "  fi\n",
      "  if [ -x \"$d/bin/python\" ]; then\n",
      "    echo \"amld: environment $short is built (by another run); using it\"\n",
      "  else\n",
      // Holding the lock: no one else builds this digest, so any folder of
      // it is what a killed build left.
      "    rm -rf \"$cache\"/.build-$short-*\n",
      "    start=$(date +%s)\n",
      "    b=$(mktemp -d \"$cache/.build-$short-XXXXXX\") || fail \"cannot create a folder in "
      "$cache\"\n",
      "    trap 'rm -rf \"$b\"' EXIT\n",
      "    trap 'exit 143' TERM INT HUP\n",
      "    echo \"amld: building environment $short in $b on $(hostname)\"\n",
      "    step ", ShellQuote(BaseInterpreter(spec)), " -m venv \"$b\" || fail \"python -m venv "
      "failed\"\n");
  if (!spec.python_version.empty()) {
    absl::StrAppend(&s, "    step \"$b/bin/python\" -c ", ShellQuote(PythonVersionCheck(spec)),
                    " || fail \"python version check failed\"\n");
  }
  absl::StrAppend(
      &s, "    printf '%s' ", ShellQuote(RequirementsFile(spec)), " > \"$b/amld-requirements.txt\"\n");
  if (!spec.pip_options.empty() || !spec.pip_requirements.empty()) {
    absl::StrAppend(&s, "    step ", absl::StrJoin(pip, " "),
                    " || fail \"pip install failed (exit code $?)\"\n");
  }
  absl::StrAppend(
      &s, "    printf '%s' ", ShellQuote(CanonicalText(spec)), " > \"$b/amld-environment.txt\"\n",
      "    ln -s \"${b##*/}\" \"$cache/.link-$$-$short\" && mv -T \"$cache/.link-$$-$short\" "
      "\"$d\" || fail \"cannot publish it in $cache\"\n",
      "    trap - EXIT TERM INT HUP\n",
      "    echo \"amld: environment $short built in $(( $(date +%s) - start )) s\"\n",
      "  fi\n",
      "  exec 9>&-\n",
      "else\n",
      "  echo \"amld: using environment $short (built before on this target)\"\n",
      "fi\n",
      "d=$(cd \"$d\" && pwd -P)\n",
      "VIRTUAL_ENV=$d\nPATH=$d/bin:$PATH\nexport VIRTUAL_ENV PATH\nunset ",
      kRemoteEnvCacheVar, "\n",
      is_script ? "shift\nexec \"$d/bin/python\" \"$@\"\n" : "exec \"$@\"\n");
  return s;
}

std::vector<std::string> RemoteEnvironmentArgv(const EnvironmentSpec& spec,
                                               const EnvironmentOptions& options, bool is_script,
                                               const std::vector<std::string>& argv) {
  std::vector<std::string> wrapped = {"/bin/sh", "-c",
                                      RemoteEnvironmentScript(spec, options, is_script),
                                      "amld-env"};
  wrapped.insert(wrapped.end(), argv.begin(), argv.end());
  return wrapped;
}

void UseRemoteEnvironment(const EnvironmentSpec& spec, const EnvironmentOptions& options,
                          bool is_script, LaunchSpec* launch) {
  launch->argv = RemoteEnvironmentArgv(spec, options, is_script, launch->argv);
  const std::string cache = (launch->run_dir / ".." / "envs").string();
  SetSortedEnv(kRemoteEnvCacheVar, cache, &launch->env);
  SetSortedEnv(kRemoteEnvCacheVar, cache, &launch->run_env);
}

}  // namespace amld::daemon

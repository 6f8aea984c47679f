#include "client/commands/completion.h"

#include <grpcpp/channel.h>
#include <grpcpp/client_context.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <sstream>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/time/time.h"
#include "amld/v1/compute.grpc.pb.h"
#include "amld/v1/experiments.grpc.pb.h"
#include "amld/v1/runs.grpc.pb.h"
#include "client/commands/command.h"
#include "storage/run_status.h"

namespace amld::client::commands {
namespace {

// Completion runs on every TAB: a daemon that is slow to answer gives none.
constexpr absl::Duration kDaemonDeadline = absl::Milliseconds(500);

bool Visible(const CLI::App* a) { return !a->get_name().empty() && !a->get_group().empty(); }

// The option of `app` (or a parent's, for fallthrough globals) named `flag`.
const CLI::Option* FindOption(const CLI::App* app, const std::string& flag) {
  for (const CLI::App* a = app; a != nullptr; a = a->get_parent()) {
    for (const CLI::Option* opt : a->get_options()) {
      for (const auto& l : opt->get_lnames()) {
        if (flag == "--" + l) return opt;
      }
      for (const auto& s : opt->get_snames()) {
        if (flag == "-" + s) return opt;
      }
    }
  }
  return nullptr;
}

bool TakesRuns(const CLI::App* app) {
  for (const CLI::Option* opt : app->get_options()) {
    if (!opt->nonpositional() && (opt->get_name() == "run" || opt->get_name() == "runs")) {
      return true;
    }
  }
  return false;
}

void SetDeadline(grpc::ClientContext* ctx) {
  ctx->set_deadline(std::chrono::system_clock::now() +
                    absl::ToChronoMilliseconds(kDaemonDeadline));
}

std::vector<std::string> RunIds(const Connection& conn) {
  auto stub = amld::v1::Runs::NewStub(conn.channel);
  grpc::ClientContext ctx;
  SetDeadline(&ctx);
  amld::v1::ListRunsRequest req;
  req.set_page_size(100);
  amld::v1::ListRunsResponse resp;
  std::vector<std::string> out = {"last"};
  if (!stub->ListRuns(&ctx, req, &resp).ok()) return out;
  for (const auto& r : resp.runs()) out.push_back(r.id());
  return out;
}

std::vector<std::string> Targets(const Connection& conn) {
  auto stub = amld::v1::ComputeTargets::NewStub(conn.channel);
  grpc::ClientContext ctx;
  SetDeadline(&ctx);
  amld::v1::ListComputeTargetsResponse resp;
  std::vector<std::string> out = {"local"};
  if (!stub->ListComputeTargets(&ctx, {}, &resp).ok()) return out;
  for (const auto& t : resp.targets()) {
    if (t.name() != "local") out.push_back(t.name());
  }
  return out;
}

std::vector<std::string> Experiments(const Connection& conn) {
  auto stub = amld::v1::Experiments::NewStub(conn.channel);
  grpc::ClientContext ctx;
  SetDeadline(&ctx);
  amld::v1::ListExperimentsResponse resp;
  std::vector<std::string> out;
  if (!stub->ListExperiments(&ctx, {}, &resp).ok()) return out;
  for (const auto& e : resp.experiments()) out.push_back(e.name());
  return out;
}

// The values of `opt`'s flag that can be listed.
std::vector<std::string> ValuesFor(const CLI::Option* opt, const GlobalOptions& global) {
  const std::string name = opt->get_lnames().empty() ? "" : opt->get_lnames().front();
  if (name == "output") return {"table", "json"};
  if (name == "status") {
    std::vector<std::string> out;
    for (int s = amld::v1::RunStatus::Value_MIN + 1; s <= amld::v1::RunStatus::Value_MAX; ++s) {
      if (amld::v1::RunStatus::Value_IsValid(s)) {
        out.push_back(amld::storage::StatusName(static_cast<amld::v1::RunStatus::Value>(s)));
      }
    }
    return out;
  }
  if (name != "compute" && name != "experiment" && name != "parent") return {};
  auto conn = ConnectFromOptions(global);
  if (!conn.ok()) return {};
  if (name == "compute") return Targets(*conn);
  if (name == "experiment") return Experiments(*conn);
  return RunIds(*conn);
}

}  // namespace

int RunComplete(const CLI::App& root, const GlobalOptions& given,
                const std::vector<std::string>& words, std::ostream& out) {
  GlobalOptions global = given;
  const CLI::App* app = &root;
  const CLI::Option* pending = nullptr;  // a flag whose value is the next word
  const std::string current = words.empty() ? "" : words.back();
  for (size_t i = 0; i + 1 < words.size(); ++i) {
    const std::string& w = words[i];
    if (pending != nullptr) {
      if (pending->get_lnames() == std::vector<std::string>{"socket"}) global.socket = w;
      pending = nullptr;
      continue;
    }
    if (w == "--") return 0;  // a script's own arguments
    if (w.size() > 1 && w[0] == '-') {
      const CLI::Option* opt = FindOption(app, w.substr(0, w.find('=')));
      if (opt != nullptr && opt->get_type_size() != 0 && w.find('=') == std::string::npos) {
        pending = opt;
      }
      continue;
    }
    for (const CLI::App* sub : app->get_subcommands({})) {
      if (Visible(sub) && sub->get_name() == w) {
        app = sub;
        break;
      }
    }
  }
  std::vector<std::string> candidates;
  if (pending != nullptr) {
    candidates = ValuesFor(pending, global);
  } else if (absl::StartsWith(current, "-")) {
    for (const CLI::App* a = app; a != nullptr; a = a->get_parent()) {
      for (const CLI::Option* opt : a->get_options()) {
        for (const auto& l : opt->get_lnames()) candidates.push_back("--" + l);
      }
    }
  } else {
    for (const CLI::App* sub : app->get_subcommands({})) {
      if (Visible(sub)) candidates.push_back(sub->get_name());
    }
    if (TakesRuns(app)) {
      if (auto conn = ConnectFromOptions(global); conn.ok()) {
        for (std::string& id : RunIds(*conn)) candidates.push_back(std::move(id));
      }
    }
  }
  for (const std::string& c : candidates) {
    if (absl::StartsWith(c, current)) out << c << '\n';
  }
  return kExitOk;
}

std::string CompletionScript(const std::string& shell) {
  if (shell == "bash") {
    return R"(# bash completion for aml: source it, or put it in
# ~/.local/share/bash-completion/completions/aml (`aml completion bash > ...`).
_aml() {
  local IFS=$'\n'
  COMPREPLY=($(aml __complete "${COMP_WORDS[@]:1:COMP_CWORD}" 2>/dev/null))
}
complete -o default -F _aml aml
)";
  }
  if (shell == "zsh") {
    return R"(#compdef aml
# zsh completion for aml: put it in a folder of $fpath as _aml
# (`aml completion zsh > ~/.zfunc/_aml`), or source it after compinit.
_aml() {
  local -a candidates
  candidates=("${(@f)$(aml __complete "${(@)words[2,CURRENT]}" 2>/dev/null)}")
  compadd -a candidates
}
if [[ "$funcstack[1]" == "_aml" ]]; then _aml "$@"; else compdef _aml aml; fi
)";
  }
  return "";
}

namespace {

// Text as roff: backslashes and a leading dot or quote escaped.
std::string Roff(const std::string& text) {
  std::string s = absl::StrReplaceAll(text, {{"\\", "\\e"}, {"-", "\\-"}});
  std::string out;
  for (absl::string_view line : absl::StrSplit(s, '\n')) {
    std::string l(absl::StripLeadingAsciiWhitespace(line));
    if (!l.empty() && (l[0] == '.' || l[0] == '\'')) l = "\\&" + l;
    absl::StrAppend(&out, out.empty() ? "" : "\n.br\n", l);
  }
  return out;
}

void ManOptions(const CLI::App& app, std::ostream& out) {
  for (const CLI::Option* opt : app.get_options()) {
    if (opt->get_lnames().empty() && opt->get_snames().empty() && !opt->nonpositional()) {
      out << ".TP\n.I " << Roff(opt->get_name()) << "\n" << Roff(opt->get_description()) << "\n";
      continue;
    }
    if (opt->get_lnames() == std::vector<std::string>{"help"}) continue;
    std::string names;
    for (const auto& s : opt->get_snames()) absl::StrAppend(&names, names.empty() ? "" : ", ", "-", s);
    for (const auto& l : opt->get_lnames()) absl::StrAppend(&names, names.empty() ? "" : ", ", "--", l);
    out << ".TP\n.B " << Roff(names) << (opt->get_type_size() != 0 ? " \\fIVALUE\\fR" : "") << "\n"
        << Roff(opt->get_description()) << "\n";
  }
}

void ManCommands(const CLI::App& app, const std::string& path, std::ostream& out) {
  for (const CLI::App* sub : app.get_subcommands({})) {
    if (!Visible(sub)) continue;
    const std::string sub_path = absl::StrCat(path, " ", sub->get_name());
    if (sub->get_subcommands({}).empty()) {
      out << ".SS " << Roff(sub_path) << "\n" << Roff(sub->get_description()) << "\n";
      ManOptions(*sub, out);
    } else {
      ManCommands(*sub, sub_path, out);
    }
  }
}

}  // namespace

std::string ManPage(const CLI::App& root) {
  std::ostringstream out;
  out << ".TH AML 1 \"\" \"amld\" \"User Commands\"\n"
      << ".SH NAME\naml \\- " << Roff(root.get_description()) << "\n"
      << ".SH SYNOPSIS\n.B aml\n[\\fIGLOBAL OPTIONS\\fR] \\fICOMMAND\\fR [\\fIOPTIONS\\fR]\n"
      << ".SH DESCRIPTION\n"
      << "The client of amld, the daemon that runs training scripts on compute you own "
         "(Azure ML's ScriptRunConfig workflow, self-hosted). Every command takes "
         "\\fB\\-\\-output json\\fR for scripts. A run may be named by its id, a unique prefix "
         "or suffix of it (3+ characters), or \\fBlast\\fR.\n"
      << ".SH GLOBAL OPTIONS\n";
  ManOptions(root, out);
  out << ".SH COMMANDS\n";
  ManCommands(root, "aml", out);
  out << ".SH ENVIRONMENT\n.TP\n.B AMLD_SOCKET\nthe daemon's socket (as \\-\\-socket)\n"
      << ".TP\n.B NO_COLOR\nset: tables are not coloured\n"
      << ".SH EXIT STATUS\n0 success (for a run followed to its end: COMPLETED); 1 failure; "
         "2 usage error; 130 interrupted.\n"
      << ".SH SEE ALSO\n\\fBamld\\fR(8), `aml COMMAND \\-\\-help`\n";
  return out.str();
}

}  // namespace amld::client::commands

// `aml`, the thin command-line client of amld. Everything lives in
// client/commands/; this file only hands over argv.
#include <grpc/grpc.h>
#include <unistd.h>

#include <cstdio>
#include <iostream>

#include "client/commands/command.h"

int main(int argc, char** argv) {
  // One gRPC reference held for the whole process: without it, gRPC shuts
  // down (joining its threads, several ms) whenever the last channel goes.
  grpc_init();
  const int code = amld::client::commands::RunCli(argc, argv);
  // Everything the command wrote is flushed and every file it made is
  // closed by now; skipping static destructors and gRPC's shutdown (which
  // joins its threads) saves a CLI call about as long as its own work.
  std::cout.flush();
  std::cerr.flush();
  std::fflush(nullptr);
  ::_exit(code);
}

// `aml`, the thin command-line client of amld. Everything lives in
// client/commands/; this file only hands over argv.
#include <unistd.h>

#include <cstdio>
#include <iostream>

#include "client/commands/command.h"
#include "client/connection.h"

int main(int argc, char** argv) {
  // One gRPC reference held from the first channel on: without it, gRPC
  // shuts down (joining its threads, several ms) whenever the last channel
  // goes. Taken then, not here: grpc_init starts gRPC's threads, which
  // --version, --help and completion never need.
  amld::client::HoldGrpcFromFirstChannel();
  const int code = amld::client::commands::RunCli(argc, argv);
  // Everything the command wrote is flushed and every file it made is
  // closed by now; skipping static destructors and gRPC's shutdown (which
  // joins its threads) saves a CLI call about as long as its own work.
  std::cout.flush();
  std::cerr.flush();
  std::fflush(nullptr);
  ::_exit(code);
}

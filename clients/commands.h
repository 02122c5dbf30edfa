// The CLI's subcommands. Each returns a process exit code (exit_codes.h) and
// prints errors to stderr.
#ifndef COREMLZ_CLIENTS_COMMANDS_H_
#define COREMLZ_CLIENTS_COMMANDS_H_

#include <string>
#include <vector>

namespace coremlz::cli {

int RunCommand(const std::string& command, const std::vector<std::string>& args);
int PrintCommandHelp(const std::string& command);

}  // namespace coremlz::cli

#endif  // COREMLZ_CLIENTS_COMMANDS_H_

// `coremlz run` and `coremlz compare`: the reference CPU executor from the
// command line - run a model on given or synthetic inputs, and measure what
// compression did to a model's outputs.
#ifndef COREMLZ_CLIENTS_EXECUTE_COMMANDS_H_
#define COREMLZ_CLIENTS_EXECUTE_COMMANDS_H_

#include <string>
#include <vector>

namespace coremlz::cli {

// True if `command` is one of these; then *exit_code is set.
bool RunExecuteCommand(const std::string& command, const std::vector<std::string>& args, int* exit_code);
bool ExecuteCommandHelp(const std::string& command);

}  // namespace coremlz::cli

#endif  // COREMLZ_CLIENTS_EXECUTE_COMMANDS_H_

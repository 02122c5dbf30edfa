// `coremlz plan`: chooses a compression per weight for a size, bits or
// output-PSNR target (plan/planner.h), and writes the config, the JSON plan
// report, the Pareto plot, the HTML page and, with --apply, the compressed model.
#ifndef COREMLZ_CLIENTS_PLAN_COMMAND_H_
#define COREMLZ_CLIENTS_PLAN_COMMAND_H_

#include <string>
#include <vector>

namespace coremlz::cli {

// True if `command` is "plan"; then *exit_code is set.
bool RunPlanCommand(const std::string& command, const std::vector<std::string>& args, int* exit_code);
bool PlanCommandHelp(const std::string& command);

}  // namespace coremlz::cli

#endif  // COREMLZ_CLIENTS_PLAN_COMMAND_H_

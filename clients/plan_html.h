// A plan as one self-contained HTML page, in the compression report's style
// (clients/html_page.h): the target and whether it was met, predicted and
// measured output PSNR and size, the Pareto plot (plan/plan_outputs.h's SVG,
// inline), per weight the choice and the output PSNR of every candidate
// tried, and the config. No script, nothing fetched.
#ifndef COREMLZ_CLIENTS_PLAN_HTML_H_
#define COREMLZ_CLIENTS_PLAN_HTML_H_

#include <string>

#include "plan/planner.h"

namespace coremlz::cli {

std::string RenderPlanHtml(const plan::PlanResult& plan, const std::string& config_yaml);

}  // namespace coremlz::cli

#endif  // COREMLZ_CLIENTS_PLAN_HTML_H_

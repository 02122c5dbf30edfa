// The Plan call: `coremlz plan` on the server. The same upload, admission,
// token, limits, header/idle timeouts, memory budget and job directory as
// Compress; the plan (plan::MakePlan) then runs as a job of the worker pool,
// its trials on the job's threads or fanned out (api/plan_fan_out.h), with
// progress streamed. Then the outputs as the embedded command writes them
// and, when asked, the compressed model, streamed as Compress streams it.
// Cancelling the call or passing its deadline stops the study, the trials
// and the rounds.
//
// What every upload-then-reply call shares (reading, writing, stall limits,
// cancellation) is api/upload_call.h; this file is only the plan's steps.
#ifndef COREMLZ_API_PLAN_REACTOR_H_
#define COREMLZ_API_PLAN_REACTOR_H_

#include "api/compressor_service.h"
#include "coremlz/v1/compressor.grpc.pb.h"
#include "grpcpp/grpcpp.h"

namespace coremlz::api {

// The reactor deletes itself when the call is done.
grpc::ServerBidiReactor<v1::PlanRequest, v1::PlanResponse>* NewPlanReactor(CompressorService* service,
                                                                             grpc::CallbackServerContext* context);

}  // namespace coremlz::api

#endif  // COREMLZ_API_PLAN_REACTOR_H_

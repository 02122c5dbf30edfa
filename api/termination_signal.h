// SIGTERM/SIGINT handling of the coremlz servers: the signals are blocked in
// every thread and main waits for them, so that shutdown runs on main's
// stack, never in a signal handler.
#ifndef COREMLZ_API_TERMINATION_SIGNAL_H_
#define COREMLZ_API_TERMINATION_SIGNAL_H_

namespace coremlz::api {

// Call before any thread starts (threads inherit the mask). Also ignores
// SIGPIPE: a peer that goes away is an error of one call, not the process's.
void BlockTerminationSignals();

// Blocks until SIGTERM or SIGINT; returns the signal number.
int WaitForTerminationSignal();

}  // namespace coremlz::api

#endif  // COREMLZ_API_TERMINATION_SIGNAL_H_

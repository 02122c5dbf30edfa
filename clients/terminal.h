// The terminal the CLI prints its tables to, if any.
#ifndef COREMLZ_CLIENTS_TERMINAL_H_
#define COREMLZ_CLIENTS_TERMINAL_H_

#include <cstddef>

namespace coremlz::cli {

// The width of stdout in columns when it is a terminal; 0 otherwise (a pipe
// or a file: CI logs keep every line whole).
size_t StdoutColumns();

}  // namespace coremlz::cli

#endif  // COREMLZ_CLIENTS_TERMINAL_H_

#include "clients/terminal.h"

#include <sys/ioctl.h>
#include <unistd.h>

namespace coremlz::cli {

size_t StdoutColumns() {
  if (::isatty(STDOUT_FILENO) != 1) return 0;
  struct winsize ws {};
  if (::ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) != 0) return 0;
  return ws.ws_col;
}

}  // namespace coremlz::cli

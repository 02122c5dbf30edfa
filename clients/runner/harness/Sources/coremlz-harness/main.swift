// coremlz-harness: the macOS command line around the CoremlzHarness library.
// coremlz-runner runs it directly for the Mac itself; flags and exit codes
// are in README.md.
import CoremlzHarness
import Foundation

let code = await HarnessCommand.run(arguments: Array(CommandLine.arguments.dropFirst()))
exit(code)

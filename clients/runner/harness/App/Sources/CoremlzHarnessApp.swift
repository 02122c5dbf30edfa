// The iOS side of the coremlz harness: a SwiftUI app that coremlz-runner
// launches with `xcrun devicectl device process launch --terminate-existing
// --console -- com.coremlz.harness --run-dir Documents/coremlz/<run> ...`.
// It runs the CoremlzHarness library on its launch arguments, writes
// <run-dir>/result.json in its data container, and exits so that devicectl
// (--console waits for the exit) returns. Started by hand, it only shows
// its version.
import CoremlzHarness
import SwiftUI
import UIKit

@main
struct CoremlzHarnessApp: App {
    @State private var status = "coremlz harness \(Harness.version)"

    var body: some Scene {
        WindowGroup {
            Text(status)
                .font(.body.monospaced())
                .multilineTextAlignment(.center)
                .padding()
                .task { await runFromLaunchArguments() }
        }
    }

    @MainActor
    private func runFromLaunchArguments() async {
        let arguments = Array(ProcessInfo.processInfo.arguments.dropFirst())
        guard arguments.contains("--run-dir") else {
            status = "coremlz harness \(Harness.version)\n\nNothing to do: coremlz-runner starts this app with devicectl."
            return
        }
        // A locked screen stops the run: keep it awake while measuring.
        UIApplication.shared.isIdleTimerDisabled = true
        status = "measuring…"
        let home = NSHomeDirectory()
        let code = await Task.detached(priority: .userInitiated) {
            await HarnessCommand.run(arguments: arguments, home: home, cleanUp: true)
        }.value
        UIApplication.shared.isIdleTimerDisabled = false
        status = "done (\(code))"
        exit(code)
    }
}

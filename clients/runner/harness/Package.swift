// swift-tools-version:5.9
// The coremlz harness: loads a compiled Core ML model, measures it, and
// writes a result JSON for coremlz-runner (workers/runner/macos_backend.cc).
// The library holds everything; the CLI (macOS) and the iOS app (App/) are
// thin shells around it. See README.md.
import PackageDescription

let package = Package(
    name: "CoremlzHarness",
    platforms: [.macOS(.v13), .iOS(.v16)],
    products: [
        .library(name: "CoremlzHarness", targets: ["CoremlzHarness"]),
        .executable(name: "coremlz-harness", targets: ["coremlz-harness"]),
    ],
    targets: [
        .target(name: "CoremlzHarness", path: "Sources/CoremlzHarness"),
        .executableTarget(
            name: "coremlz-harness",
            dependencies: ["CoremlzHarness"],
            path: "Sources/coremlz-harness"),
    ]
)

// Command-line flags shared by the macOS CLI and the iOS app (which receives
// them as launch arguments through `devicectl device process launch`).
import CoreML
import Foundation

/// What one harness run does.
public struct HarnessOptions {
    /// The compiled model (.mlmodelc) to measure.
    public var modelPath = ""
    /// A compiled original to compare outputs with, on the same inputs.
    public var originalPath: String?
    /// Caller-provided inputs (JSON, see README.md); random inputs otherwise.
    public var inputsPath: String?
    /// Where the result JSON goes.
    public var outputPath = ""
    /// The directory the other paths are relative to, as given (the iOS
    /// app's is relative to its data container).
    public var runDir: String?
    /// `runDir` made absolute by `resolved(home:)`.
    public private(set) var runDirectory: String?
    /// Where the models were found, which may be below `runDirectory`.
    public private(set) var modelDirectory: String?
    public var computeUnitsName = "all"
    public var iterations = 20
    public var warmup = 3
    public var seed: UInt64 = 42
    public var computePlan = true

    public init() {}

    public static let computeUnitNames = ["all", "cpuOnly", "cpuAndGPU", "cpuAndNeuralEngine"]

    public var computeUnits: MLComputeUnits {
        switch computeUnitsName {
        case "cpuOnly": return .cpuOnly
        case "cpuAndGPU": return .cpuAndGPU
        case "cpuAndNeuralEngine": return .cpuAndNeuralEngine
        default: return .all
        }
    }

    /// Makes every path absolute: relative to the run directory when there is
    /// one (itself relative to `home`, or to the current directory), else to
    /// the current directory.
    ///
    /// The runner copies its staging directory to the run directory with
    /// `devicectl device copy to`. Whether that lands the staging directory's
    /// contents in the run directory or the staging directory inside it is
    /// not documented, so both layouts are accepted: the staging directory has
    /// the run directory's name.
    public func resolved(home: String?) -> HarnessOptions {
        var o = self
        let cwd = URL(fileURLWithPath: FileManager.default.currentDirectoryPath, isDirectory: true)
        var base = cwd
        var modelBase = cwd
        if let runDir = runDir {
            let root = home.map { URL(fileURLWithPath: $0, isDirectory: true) } ?? cwd
            let dir = runDir.hasPrefix("/") ? URL(fileURLWithPath: runDir, isDirectory: true)
                                            : root.appendingPathComponent(runDir, isDirectory: true)
            base = dir
            modelBase = dir
            let nested = dir.appendingPathComponent(dir.lastPathComponent, isDirectory: true)
            let fm = FileManager.default
            if !modelPath.hasPrefix("/"),
               !fm.fileExists(atPath: dir.appendingPathComponent(modelPath).path),
               fm.fileExists(atPath: nested.appendingPathComponent(modelPath).path) {
                modelBase = nested
            }
            o.runDirectory = dir.path
            o.modelDirectory = modelBase.path
        }
        func absolute(_ path: String, _ against: URL) -> String {
            path.hasPrefix("/") ? path : against.appendingPathComponent(path).path
        }
        o.modelPath = absolute(modelPath, modelBase)
        o.originalPath = originalPath.map { absolute($0, modelBase) }
        o.inputsPath = inputsPath.map { absolute($0, modelBase) }
        o.outputPath = absolute(outputPath, base)
        return o
    }
}

public struct UsageError: Error, CustomStringConvertible {
    public let description: String
}

public enum HarnessArguments {
    public static let usage = """
        usage: coremlz-harness --model M.mlmodelc --output result.json [options]
          --model PATH            compiled model to measure (required)
          --original PATH         compiled original: compare outputs on the same inputs
          --inputs PATH           inputs JSON ({"inputs": [{"name", "shape", "values"}]}); default random
          --output PATH           result JSON (required)
          --run-dir DIR           resolve the other paths against DIR
          --compute-units U       all | cpuOnly | cpuAndGPU | cpuAndNeuralEngine (default all)
          --iterations N          timed predictions (default 20)
          --warmup N              untimed predictions first (default 3)
          --seed N                random inputs' seed (default 42)
          --no-compute-plan       skip MLComputePlan placement
        """

    /// Parses flags. The iOS app passes `ignoreUnknown` because the system or
    /// Xcode may add arguments of their own (`-NSDocumentRevisionsDebugMode
    /// YES`).
    public static func parse(_ args: [String], ignoreUnknown: Bool = false) throws -> HarnessOptions {
        var o = HarnessOptions()
        var i = 0
        func value(_ flag: String) throws -> String {
            guard i + 1 < args.count else { throw UsageError(description: "\(flag) needs a value") }
            i += 1
            return args[i]
        }
        func count(_ flag: String, minimum: Int) throws -> Int {
            let text = try value(flag)
            guard let n = Int(text), n >= minimum else {
                throw UsageError(description: "\(flag) needs an integer >= \(minimum), not \"\(text)\"")
            }
            return n
        }
        while i < args.count {
            let arg = args[i]
            switch arg {
            case "--model": o.modelPath = try value(arg)
            case "--original": o.originalPath = try value(arg)
            case "--inputs": o.inputsPath = try value(arg)
            case "--output": o.outputPath = try value(arg)
            case "--run-dir": o.runDir = try value(arg)
            case "--compute-units":
                o.computeUnitsName = try value(arg)
                guard HarnessOptions.computeUnitNames.contains(o.computeUnitsName) else {
                    throw UsageError(description: "--compute-units must be one of \(HarnessOptions.computeUnitNames.joined(separator: ", "))")
                }
            case "--iterations": o.iterations = try count(arg, minimum: 1)
            case "--warmup": o.warmup = try count(arg, minimum: 0)
            case "--seed":
                let text = try value(arg)
                guard let seed = UInt64(text) else { throw UsageError(description: "--seed needs an unsigned integer") }
                o.seed = seed
            case "--no-compute-plan": o.computePlan = false
            case "--help", "-h": throw UsageError(description: usage)
            default:
                if !ignoreUnknown { throw UsageError(description: "unknown argument \"\(arg)\"\n\(usage)") }
            }
            i += 1
        }
        if o.modelPath.isEmpty { throw UsageError(description: "--model is required\n\(usage)") }
        if o.outputPath.isEmpty { throw UsageError(description: "--output is required\n\(usage)") }
        return o
    }
}

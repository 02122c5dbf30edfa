// One measurement: load, inputs, warm-up, timed predictions, memory, the
// compute plan, and (with an original) output fidelity; then the result
// JSON. Core ML's failures are recorded in the result, never thrown, so the
// runner always gets Core ML's own words.
import CoreML
import Foundation

/// A Core ML failure, kept as Core ML reported it.
public struct HarnessFailure {
    public let stage: String     // "load", "inputs", "predict", "original", "compare"
    public let message: String   // localizedDescription, verbatim
    public let domain: String
    public let code: Int

    init(stage: String, _ error: Error) {
        let ns = error as NSError
        self.stage = stage
        message = error.localizedDescription
        domain = ns.domain
        code = ns.code
    }

    init(stage: String, message: String) {
        self.stage = stage
        self.message = message
        domain = "coremlz.harness"
        code = 0
    }
}

public struct HarnessResult {
    public static let schema = "coremlz.harness.result/1"

    public var computeUnits = "all"
    public var loadSeconds = 0.0
    public var originalLoadSeconds: Double?
    public var latency = LatencySummary()
    public var peakMemoryBytes: UInt64 = 0
    public var computePlanStatus = "skipped"   // ok | unavailable | failed | skipped
    public var computePlanMessage = ""
    public var placement: [PlacedOperation] = []
    public var fidelity: [OutputFidelity] = []
    public var errors: [HarnessFailure] = []
    public var notes: [String] = []

    /// JSON has no infinities or NaNs: those go as strings.
    private static func number(_ x: Double) -> Any {
        if x.isFinite { return x }
        if x.isNaN { return "nan" }
        return x > 0 ? "inf" : "-inf"
    }

    public func jsonObject() -> [String: Any] {
        var plan: [String: Any] = ["status": computePlanStatus]
        if !computePlanMessage.isEmpty { plan["message"] = computePlanMessage }
        if computePlanStatus == "ok" {
            plan["operations"] = placement.map { op -> [String: Any] in
                var o: [String: Any] = ["name": op.name, "type": op.type, "compute_unit": op.computeUnit]
                if let cost = op.estimatedCost { o["estimated_cost"] = HarnessResult.number(cost) }
                return o
            }
        }
        var root: [String: Any] = [
            "schema": HarnessResult.schema,
            "harness_version": Harness.version,
            "device": DeviceFacts.current(),
            "compute_units": computeUnits,
            "load_seconds": HarnessResult.number(loadSeconds),
            "latency_ms": [
                "iterations": latency.iterations, "warmup": latency.warmup,
                "median": HarnessResult.number(latency.median), "p90": HarnessResult.number(latency.p90),
                "min": HarnessResult.number(latency.min), "max": HarnessResult.number(latency.max),
            ] as [String: Any],
            "peak_memory_bytes": NSNumber(value: peakMemoryBytes),
            "compute_plan": plan,
            "fidelity": fidelity.map { f -> [String: Any] in
                ["name": f.name, "elements": f.elements, "psnr_db": HarnessResult.number(f.psnrDB),
                 "snr_db": HarnessResult.number(f.snrDB), "max_abs_error": HarnessResult.number(f.maxAbsError)]
            },
            "errors": errors.map { e -> [String: Any] in
                ["stage": e.stage, "message": e.message, "domain": e.domain, "code": e.code]
            },
            "notes": notes,
        ]
        if let s = originalLoadSeconds { root["original_load_seconds"] = HarnessResult.number(s) }
        return root
    }

    public func write(to path: String) throws {
        let data = try JSONSerialization.data(withJSONObject: jsonObject(), options: [.prettyPrinted, .sortedKeys])
        try data.write(to: URL(fileURLWithPath: path), options: .atomic)
    }

    public var summary: String {
        if let first = errors.first { return "coremlz-harness: \(first.stage) failed: \(first.message)" }
        var line = String(format: "coremlz-harness: load %.1f ms, median %.3f ms, p90 %.3f ms over %ld, peak %.1f MiB",
                          loadSeconds * 1000, latency.median, latency.p90, latency.iterations,
                          Double(peakMemoryBytes) / 1_048_576)
        for f in fidelity { line += String(format: ", %@ PSNR %.2f dB", f.name, f.psnrDB) }
        return line
    }
}

/// Predictions with or without state: stateful models (iOS 18 / macOS 15)
/// need an MLState, one per sequence of predictions.
final class Predictor {
    private let model: MLModel
    private var state: AnyObject?

    init(_ model: MLModel) {
        self.model = model
        #if compiler(>=6.0)  // the iOS 18 / macOS 15 SDKs (Xcode 16)
        if #available(macOS 15.0, iOS 18.0, *), !model.modelDescription.stateDescriptionsByName.isEmpty {
            state = model.makeState()
        }
        #endif
    }

    var stateful: Bool { state != nil }

    func predict(_ input: MLFeatureProvider) throws -> MLFeatureProvider {
        #if compiler(>=6.0)
        if #available(macOS 15.0, iOS 18.0, *), let state = state as? MLState {
            return try model.prediction(from: input, using: state)
        }
        #endif
        return try model.prediction(from: input)
    }
}

public enum Harness {
    public static let version = "0.1.0"

    public static func run(_ o: HarnessOptions) async -> HarnessResult {
        var r = HarnessResult()
        r.computeUnits = o.computeUnitsName
        let configuration = MLModelConfiguration()
        configuration.computeUnits = o.computeUnits
        let modelURL = URL(fileURLWithPath: o.modelPath)

        // Load: Core ML compiles for the device and specializes for the compute units here.
        var start = nowMilliseconds()
        let model: MLModel
        do {
            model = try MLModel(contentsOf: modelURL, configuration: configuration)
        } catch {
            r.loadSeconds = (nowMilliseconds() - start) / 1000
            r.errors.append(HarnessFailure(stage: "load", error))
            r.computePlanMessage = "the model did not load"
            r.peakMemoryBytes = Memory.peak()
            return r
        }
        r.loadSeconds = (nowMilliseconds() - start) / 1000

        let inputs: MLFeatureProvider
        do {
            let provided = try o.inputsPath.map { try loadProvidedInputs(path: $0) } ?? [:]
            inputs = try makeInputs(for: model.modelDescription, provided: provided, seed: o.seed, notes: &r.notes)
        } catch {
            r.errors.append(HarnessFailure(stage: "inputs", error))
            r.computePlanMessage = "no inputs"
            r.peakMemoryBytes = Memory.peak()
            return r
        }

        let predictor = Predictor(model)
        if predictor.stateful { r.notes.append("stateful model: one state carried through warm-up and timed predictions") }
        var peak = Memory.footprint()
        do {
            for _ in 0..<o.warmup { _ = try predictor.predict(inputs) }
            peak = max(peak, Memory.footprint())
            var times: [Double] = []
            times.reserveCapacity(o.iterations)
            for _ in 0..<o.iterations {
                start = nowMilliseconds()
                _ = try predictor.predict(inputs)
                times.append(nowMilliseconds() - start)
            }
            r.latency = LatencySummary(milliseconds: times, warmup: o.warmup)
        } catch {
            r.errors.append(HarnessFailure(stage: "predict", error))
        }
        // Before the compute plan and the original add their own memory.
        r.peakMemoryBytes = max(peak, Memory.peak())

        if !o.computePlan {
            r.computePlanMessage = "--no-compute-plan"
        } else if #available(macOS 14.4, iOS 17.4, *) {
            do {
                r.placement = try await plannedPlacement(of: modelURL, configuration: configuration)
                r.computePlanStatus = "ok"
            } catch {
                r.computePlanStatus = "failed"
                r.computePlanMessage = error.localizedDescription
            }
        } else {
            r.computePlanStatus = "unavailable"
            r.computePlanMessage = "MLComputePlan needs iOS 17.4 or macOS 14.4"
        }

        if let originalPath = o.originalPath, r.errors.isEmpty {
            compare(model: model, originalURL: URL(fileURLWithPath: originalPath), configuration: configuration,
                    inputs: inputs, into: &r)
        }
        return r
    }

    /// Both models, fresh state each, the same inputs, one prediction.
    private static func compare(model: MLModel, originalURL: URL, configuration: MLModelConfiguration,
                                inputs: MLFeatureProvider, into r: inout HarnessResult) {
        let original: MLModel
        let start = nowMilliseconds()
        do {
            original = try MLModel(contentsOf: originalURL, configuration: configuration)
        } catch {
            r.errors.append(HarnessFailure(stage: "original", error))
            return
        }
        r.originalLoadSeconds = (nowMilliseconds() - start) / 1000
        let expected: MLFeatureProvider, actual: MLFeatureProvider
        do {
            expected = try Predictor(original).predict(inputs)
        } catch {
            r.errors.append(HarnessFailure(stage: "original", error))
            return
        }
        do {
            actual = try Predictor(model).predict(inputs)
        } catch {
            r.errors.append(HarnessFailure(stage: "predict", error))
            return
        }
        for name in model.modelDescription.outputDescriptionsByName.keys.sorted() {
            guard let x = expected.featureValue(for: name), let y = actual.featureValue(for: name) else {
                r.notes.append("output \"\(name)\" missing from a prediction; not compared")
                continue
            }
            do {
                guard let xs = try outputValues(x), let ys = try outputValues(y) else {
                    r.notes.append("output \"\(name)\" is not numeric; not compared")
                    continue
                }
                guard xs.count == ys.count else {
                    r.errors.append(HarnessFailure(stage: "compare", message:
                        "output \"\(name)\": \(xs.count) values from the original, \(ys.count) from the compressed model"))
                    continue
                }
                r.fidelity.append(OutputFidelity(name: name, original: xs, compressed: ys))
            } catch {
                r.notes.append("output \"\(name)\" not compared: \(error.localizedDescription)")
            }
        }
    }
}

/// The CLI's and the app's shared entry point.
///
/// Exit codes: 0 ran without a Core ML error; 1 the result was written and
/// holds errors; 2 the result could not be written; 64 bad arguments (no
/// result written: the caller's command line is wrong, not the model).
public enum HarnessCommand {
    public static func run(arguments: [String], home: String? = nil, cleanUp: Bool = false) async -> Int32 {
        let options: HarnessOptions
        do {
            options = try HarnessArguments.parse(arguments, ignoreUnknown: home != nil).resolved(home: home)
        } catch {
            FileHandle.standardError.write(Data("coremlz-harness: \(error)\n".utf8))
            return 64
        }
        if cleanUp, let dir = options.runDirectory { removeOtherRuns(keeping: dir) }
        // A result is only ever this run's.
        try? FileManager.default.removeItem(atPath: options.outputPath)
        let result = await Harness.run(options)
        do {
            try result.write(to: options.outputPath)
        } catch {
            FileHandle.standardError.write(Data("coremlz-harness: cannot write \(options.outputPath): \(error.localizedDescription)\n".utf8))
            return 2
        }
        print(result.summary)
        if cleanUp {
            // The result stays for `devicectl device copy from`; the models go.
            for path in [options.modelPath, options.originalPath].compactMap({ $0 }) {
                try? FileManager.default.removeItem(atPath: path)
            }
        }
        return result.errors.isEmpty ? 0 : 1
    }

    /// On a phone, earlier runs' directories (their models and results) are
    /// removed when the next run starts, so storage holds one run at most.
    private static func removeOtherRuns(keeping dir: String) {
        let fm = FileManager.default
        let url = URL(fileURLWithPath: dir)
        let parent = url.deletingLastPathComponent()
        guard let siblings = try? fm.contentsOfDirectory(atPath: parent.path) else { return }
        for name in siblings where name != url.lastPathComponent {
            try? fm.removeItem(at: parent.appendingPathComponent(name))
        }
    }
}

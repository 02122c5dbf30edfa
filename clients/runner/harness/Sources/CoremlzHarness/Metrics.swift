// Latency statistics, output fidelity, memory and device facts.
import Darwin
import Foundation

public struct LatencySummary {
    public var iterations = 0
    public var warmup = 0
    public var median = 0.0
    public var p90 = 0.0
    public var min = 0.0
    public var max = 0.0

    /// Median (mean of the middle two for an even count) and nearest-rank p90.
    init(milliseconds: [Double], warmup: Int) {
        self.warmup = warmup
        let sorted = milliseconds.sorted()
        iterations = sorted.count
        guard !sorted.isEmpty else { return }
        let n = sorted.count
        median = n % 2 == 1 ? sorted[n / 2] : (sorted[n / 2 - 1] + sorted[n / 2]) / 2
        p90 = sorted[Swift.max(0, Int((0.9 * Double(n)).rounded(.up)) - 1)]
        min = sorted[0]
        max = sorted[n - 1]
    }

    init() {}
}

public struct OutputFidelity {
    public let name: String
    public let elements: Int
    public let psnrDB: Double
    public let snrDB: Double
    public let maxAbsError: Double

    /// The definitions of coremlz's weight reports (compress/metrics.cc):
    /// SNR = 10 log10(mean(x^2) / mean((x - y)^2)), PSNR = 10 log10(max(x^2) /
    /// mean((x - y)^2)), x the original's output. +inf when equal; NaNs
    /// propagate (and fail the run).
    init(name: String, original x: [Double], compressed y: [Double]) {
        self.name = name
        elements = x.count
        var signal = 0.0, peak = 0.0, noise = 0.0, maxError = 0.0
        for i in 0..<x.count {
            let d = x[i] - y[i]
            signal += x[i] * x[i]
            peak = Swift.max(peak, x[i] * x[i])
            noise += d * d
            maxError = d.isNaN ? .nan : Swift.max(maxError, abs(d))
            if maxError.isNaN { break }
        }
        maxAbsError = maxError
        if maxError.isNaN || noise.isNaN {
            psnrDB = .nan
            snrDB = .nan
        } else if noise == 0 {
            psnrDB = .infinity
            snrDB = .infinity
        } else {
            let n = Double(x.count)
            let mse = noise / n
            snrDB = signal == 0 ? -.infinity : 10 * log10((signal / n) / mse)
            psnrDB = peak == 0 ? -.infinity : 10 * log10(peak / mse)
        }
    }
}

enum Memory {
    private static func vmInfo() -> task_vm_info_data_t? {
        var info = task_vm_info_data_t()
        var count = mach_msg_type_number_t(MemoryLayout<task_vm_info_data_t>.size / MemoryLayout<integer_t>.size)
        let kr = withUnsafeMutablePointer(to: &info) { pointer in
            pointer.withMemoryRebound(to: integer_t.self, capacity: Int(count)) {
                task_info(mach_task_self_, task_flavor_t(TASK_VM_INFO), $0, &count)
            }
        }
        return kr == KERN_SUCCESS ? info : nil
    }

    /// phys_footprint: the figure iOS's memory limits act on.
    static func footprint() -> UInt64 { vmInfo()?.phys_footprint ?? 0 }

    /// The process's high-water footprint (ledger_phys_footprint_peak; 0 on
    /// kernels too old to fill it, hence the max with the current value).
    static func peak() -> UInt64 {
        guard let info = vmInfo() else { return 0 }
        return Swift.max(info.phys_footprint, UInt64(Swift.max(0, info.ledger_phys_footprint_peak)))
    }
}

enum DeviceFacts {
    private static func sysctlString(_ name: String) -> String {
        var size = 0
        guard sysctlbyname(name, nil, &size, nil, 0) == 0, size > 0 else { return "" }
        var buffer = [CChar](repeating: 0, count: size)
        guard sysctlbyname(name, &buffer, &size, nil, 0) == 0 else { return "" }
        return String(cString: buffer)
    }

    static func current() -> [String: String] {
        let v = ProcessInfo.processInfo.operatingSystemVersion
        let version = v.patchVersion > 0 ? "\(v.majorVersion).\(v.minorVersion).\(v.patchVersion)"
                                         : "\(v.majorVersion).\(v.minorVersion)"
        #if os(iOS)
        return ["platform": "iOS", "os_version": version, "model": sysctlString("hw.machine")]  // "iPhone15,2"
        #else
        return ["platform": "macOS", "os_version": version, "model": sysctlString("hw.model"),  // "Mac14,3"
                "chip": sysctlString("machdep.cpu.brand_string")]
        #endif
    }
}

/// Monotonic milliseconds.
func nowMilliseconds() -> Double { Double(DispatchTime.now().uptimeNanoseconds) / 1e6 }

// Building inputs from a model's description and reading outputs back as
// doubles, honouring MLMultiArray strides (an array Core ML returns need not
// be contiguous).
import CoreML
import CoreVideo
import Foundation

struct HarnessError: LocalizedError {
    let message: String
    init(_ message: String) { self.message = message }
    var errorDescription: String? { message }
}

/// SplitMix64: tiny, seedable, and the same sequence on every device, so a
/// seed reproduces the inputs anywhere.
struct SplitMix64 {
    private var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
    /// Uniform in [0, 1).
    mutating func unit() -> Double { Double(next() >> 11) * (1.0 / 9_007_199_254_740_992.0) }
}

// MARK: - half precision by hand (Swift's Float16 is unavailable on x86_64 macOS)

func halfBits(_ value: Float) -> UInt16 {
    let bits = value.bitPattern
    let sign = UInt16((bits >> 16) & 0x8000)
    let exponent = Int((bits >> 23) & 0xFF)
    var mantissa = bits & 0x7F_FFFF
    if exponent == 0xFF {  // inf / nan
        return sign | 0x7C00 | (mantissa != 0 ? 0x200 : 0)
    }
    let e = exponent - 127 + 15
    if e >= 0x1F { return sign | 0x7C00 }  // overflow: inf
    if e <= 0 {  // subnormal half, or zero
        if e < -10 { return sign }
        mantissa |= 0x80_0000
        let shift = UInt32(14 - e)
        var half = mantissa >> shift
        let remainder = mantissa & ((1 << shift) - 1)
        let halfway = UInt32(1) << (shift - 1)
        if remainder > halfway || (remainder == halfway && (half & 1) != 0) { half += 1 }
        return sign | UInt16(half)
    }
    var half = UInt32(e) << 10 | (mantissa >> 13)
    let remainder = mantissa & 0x1FFF
    if remainder > 0x1000 || (remainder == 0x1000 && (half & 1) != 0) { half += 1 }  // may carry into inf: correct
    return sign | UInt16(half)
}

func halfValue(_ bits: UInt16) -> Float {
    let sign: UInt32 = UInt32(bits & 0x8000) << 16
    let exponent = UInt32((bits >> 10) & 0x1F)
    var mantissa = UInt32(bits & 0x3FF)
    if exponent == 0 {
        if mantissa == 0 { return Float(bitPattern: sign) }
        var e: UInt32 = 127 - 15 + 1
        while mantissa & 0x400 == 0 {
            mantissa <<= 1
            e -= 1
        }
        mantissa &= 0x3FF
        return Float(bitPattern: sign | (e << 23) | (mantissa << 13))
    }
    if exponent == 0x1F { return Float(bitPattern: sign | 0x7F80_0000 | (mantissa << 13)) }
    return Float(bitPattern: sign | ((exponent + 127 - 15) << 23) | (mantissa << 13))
}

// MARK: - strided element access

/// Calls `body(linearIndex, storageOffset)` for every element in row-major
/// order; offsets are in elements.
func forEachElement(shape: [Int], strides: [Int], _ body: (Int, Int) -> Void) {
    let count = shape.reduce(1, *)
    guard count > 0 else { return }
    var index = [Int](repeating: 0, count: shape.count)
    var offset = 0
    for linear in 0..<count {
        body(linear, offset)
        var d = shape.count - 1
        while d >= 0 {
            index[d] += 1
            offset += strides[d]
            if index[d] < shape[d] { break }
            offset -= strides[d] * shape[d]
            index[d] = 0
            d -= 1
        }
    }
}

func dataTypeName(_ type: MLMultiArrayDataType) -> String {
    switch type {
    case .double: return "float64"
    case .float32: return "float32"
    case .float16: return "float16"
    case .int32: return "int32"
    default: return "dtype \(type.rawValue)"
    }
}

/// Rounded and clamped; NaN becomes 0 (Int32(_: Double) would trap).
func clampedInt32(_ v: Double) -> Int32 {
    guard v.isFinite else { return v.isNaN ? 0 : (v > 0 ? Int32.max : Int32.min) }
    return Int32(min(max(v.rounded(), Double(Int32.min)), Double(Int32.max)))
}

/// A new array of `shape` and `dataType` holding `value(i)` at row-major
/// index i.
func makeMultiArray(shape: [Int], dataType: MLMultiArrayDataType, value: (Int) -> Double) throws -> MLMultiArray {
    let array = try MLMultiArray(shape: shape.map { NSNumber(value: $0) }, dataType: dataType)
    let dims = array.shape.map { $0.intValue }
    try array.withUnsafeMutableBytes { raw, strides in
        switch dataType {
        case .double:
            forEachElement(shape: dims, strides: strides) { i, off in
                raw.storeBytes(of: value(i), toByteOffset: off * 8, as: Double.self)
            }
        case .float32:
            forEachElement(shape: dims, strides: strides) { i, off in
                raw.storeBytes(of: Float(value(i)), toByteOffset: off * 4, as: Float.self)
            }
        case .float16:
            forEachElement(shape: dims, strides: strides) { i, off in
                raw.storeBytes(of: halfBits(Float(value(i))), toByteOffset: off * 2, as: UInt16.self)
            }
        case .int32:
            forEachElement(shape: dims, strides: strides) { i, off in
                raw.storeBytes(of: clampedInt32(value(i)), toByteOffset: off * 4, as: Int32.self)
            }
        default:
            throw HarnessError("cannot fill a multi-array of \(dataTypeName(dataType))")
        }
    }
    return array
}

/// Every element as a double, in row-major order.
func doubles(of array: MLMultiArray) throws -> [Double] {
    let shape = array.shape.map { $0.intValue }
    let strides = array.strides.map { $0.intValue }
    var out = [Double](repeating: 0, count: shape.reduce(1, *))
    let type = array.dataType
    try array.withUnsafeBytes { raw in
        switch type {
        case .double:
            forEachElement(shape: shape, strides: strides) { i, off in out[i] = raw.load(fromByteOffset: off * 8, as: Double.self) }
        case .float32:
            forEachElement(shape: shape, strides: strides) { i, off in
                out[i] = Double(raw.load(fromByteOffset: off * 4, as: Float.self))
            }
        case .float16:
            forEachElement(shape: shape, strides: strides) { i, off in
                out[i] = Double(halfValue(raw.load(fromByteOffset: off * 2, as: UInt16.self)))
            }
        case .int32:
            forEachElement(shape: shape, strides: strides) { i, off in
                out[i] = Double(raw.load(fromByteOffset: off * 4, as: Int32.self))
            }
        default:
            throw HarnessError("cannot read a multi-array of \(dataTypeName(type))")
        }
    }
    return out
}

// MARK: - inputs

struct ProvidedTensor {
    let shape: [Int]
    let values: [Double]
}

/// `{"inputs": [{"name": "x", "shape": [1, 3], "values": [0.5, 1, 2]}]}`;
/// null values (what the runner writes for non-finite floats) become NaN.
func loadProvidedInputs(path: String) throws -> [String: ProvidedTensor] {
    let data = try Data(contentsOf: URL(fileURLWithPath: path))
    guard let root = try JSONSerialization.jsonObject(with: data) as? [String: Any],
          let list = root["inputs"] as? [[String: Any]] else {
        throw HarnessError("\(path): expected {\"inputs\": [...]}")
    }
    var out: [String: ProvidedTensor] = [:]
    for item in list {
        guard let name = item["name"] as? String else { throw HarnessError("\(path): an input has no name") }
        let shape = (item["shape"] as? [NSNumber])?.map { $0.intValue } ?? []
        let values = (item["values"] as? [Any] ?? []).map { ($0 as? NSNumber)?.doubleValue ?? .nan }
        guard shape.reduce(1, *) == values.count else {
            throw HarnessError("input \"\(name)\": shape \(shape) holds \(shape.reduce(1, *)) values, \(values.count) given")
        }
        out[name] = ProvidedTensor(shape: shape, values: values)
    }
    return out
}

/// One value per input of the model: the caller's where given, otherwise
/// random from `rng` (inputs visited in name order, so a seed always gives
/// the same inputs). Floats are uniform in [-1, 1), integers in [0, 16) (valid
/// for any embedding or vocabulary lookup), images random bytes. `notes`
/// says what each input was.
func makeInputs(for description: MLModelDescription, provided: [String: ProvidedTensor], seed: UInt64,
                notes: inout [String]) throws -> MLFeatureProvider {
    var rng = SplitMix64(seed: seed)
    var features: [String: MLFeatureValue] = [:]
    let unknown = Set(provided.keys).subtracting(description.inputDescriptionsByName.keys)
    if let name = unknown.sorted().first { throw HarnessError("input \"\(name)\" given but the model has no such input") }
    for name in description.inputDescriptionsByName.keys.sorted() {
        let input = description.inputDescriptionsByName[name]!
        switch input.type {
        case .multiArray:
            guard let constraint = input.multiArrayConstraint else { throw HarnessError("input \"\(name)\" has no array constraint") }
            let type = constraint.dataType
            if let given = provided[name] {
                features[name] = MLFeatureValue(multiArray: try makeMultiArray(shape: given.shape, dataType: type) { given.values[$0] })
                notes.append("input \"\(name)\": given \(dataTypeName(type)) \(given.shape)")
                continue
            }
            // The default shape; a flexible dimension reported as 0 or less becomes 1.
            let shape = constraint.shape.map { max(1, $0.intValue) }
            if type == .int32 {
                features[name] = MLFeatureValue(multiArray: try makeMultiArray(shape: shape, dataType: type) { _ in
                    Double(rng.next() % 16)
                })
                notes.append("input \"\(name)\": random int32 \(shape) in [0, 16), seed \(seed)")
            } else {
                features[name] = MLFeatureValue(multiArray: try makeMultiArray(shape: shape, dataType: type) { _ in
                    rng.unit() * 2 - 1
                })
                notes.append("input \"\(name)\": random \(dataTypeName(type)) \(shape), uniform in [-1, 1), seed \(seed)")
            }
        case .image:
            guard let constraint = input.imageConstraint else { throw HarnessError("input \"\(name)\" has no image constraint") }
            if provided[name] != nil { throw HarnessError("input \"\(name)\" is an image: give images through the model, not --inputs") }
            features[name] = MLFeatureValue(pixelBuffer: try randomPixelBuffer(constraint, rng: &rng))
            notes.append("input \"\(name)\": random \(constraint.pixelsWide)x\(constraint.pixelsHigh) image, seed \(seed)")
        case .double:
            let v = provided[name]?.values.first ?? (rng.unit() * 2 - 1)
            features[name] = MLFeatureValue(double: v)
        case .int64:
            let v = provided[name]?.values.first.map { Int64(clampedInt32($0)) } ?? Int64(rng.next() % 16)
            features[name] = MLFeatureValue(int64: v)
        default:
            throw HarnessError("input \"\(name)\" is of a type the harness cannot make (MLFeatureType \(input.type.rawValue))")
        }
    }
    return try MLDictionaryFeatureProvider(dictionary: features)
}

private func randomPixelBuffer(_ constraint: MLImageConstraint, rng: inout SplitMix64) throws -> CVPixelBuffer {
    var created: CVPixelBuffer?
    // IOSurface-backed, as the Neural Engine prefers.
    let attributes = [kCVPixelBufferIOSurfacePropertiesKey: [String: Any]()] as CFDictionary
    let status = CVPixelBufferCreate(kCFAllocatorDefault, constraint.pixelsWide, constraint.pixelsHigh,
                                     constraint.pixelFormatType, attributes, &created)
    guard status == kCVReturnSuccess, let buffer = created else {
        throw HarnessError("CVPixelBufferCreate(\(constraint.pixelsWide)x\(constraint.pixelsHigh), format \(constraint.pixelFormatType)) failed: \(status)")
    }
    CVPixelBufferLockBaseAddress(buffer, [])
    defer { CVPixelBufferUnlockBaseAddress(buffer, []) }
    let halfFloat = constraint.pixelFormatType == kCVPixelFormatType_OneComponent16Half
    func fill(_ base: UnsafeMutableRawPointer?, _ bytes: Int) {
        guard let base = base else { return }
        if halfFloat {  // random bytes would include NaNs
            for i in 0..<(bytes / 2) { base.storeBytes(of: halfBits(Float(rng.unit())), toByteOffset: i * 2, as: UInt16.self) }
        } else {
            for i in 0..<bytes { base.storeBytes(of: UInt8(truncatingIfNeeded: rng.next()), toByteOffset: i, as: UInt8.self) }
        }
    }
    if CVPixelBufferIsPlanar(buffer) {
        for plane in 0..<CVPixelBufferGetPlaneCount(buffer) {
            fill(CVPixelBufferGetBaseAddressOfPlane(buffer, plane),
                 CVPixelBufferGetBytesPerRowOfPlane(buffer, plane) * CVPixelBufferGetHeightOfPlane(buffer, plane))
        }
    } else {
        fill(CVPixelBufferGetBaseAddress(buffer), CVPixelBufferGetBytesPerRow(buffer) * CVPixelBufferGetHeight(buffer))
    }
    return buffer
}

/// An output as doubles, or nil (with the reason) when it is not numeric.
func outputValues(_ value: MLFeatureValue) throws -> [Double]? {
    switch value.type {
    case .multiArray:
        guard let array = value.multiArrayValue else { return nil }
        return try doubles(of: array)
    case .double: return [value.doubleValue]
    case .int64: return [Double(value.int64Value)]
    default: return nil
    }
}

// Where Core ML plans to run each operation: MLComputePlan (iOS 17.4 / macOS
// 14.4). API as documented by Apple: MLComputePlan.load(contentsOf:
// configuration:), modelStructure (.program / .neuralNetwork / .pipeline),
// deviceUsage(for:) -> DeviceUsage? with .preferred: MLComputeDevice (.cpu,
// .gpu, .neuralEngine), estimatedCost(of:) -> Cost? with .weight, the share
// of the whole model's work in [0, 1] (ML Program operations only).
import CoreML
import Foundation

public struct PlacedOperation {
    public let name: String          // first output's name (a layer's name for NeuralNetworks)
    public let type: String          // operator ("ios17.conv") or layer type
    public let computeUnit: String   // "CPU", "GPU", "NE"
    public let estimatedCost: Double?
}

@available(macOS 14.4, iOS 17.4, *)
func plannedPlacement(of url: URL, configuration: MLModelConfiguration) async throws -> [PlacedOperation] {
    let plan = try await MLComputePlan.load(contentsOf: url, configuration: configuration)
    var placed: [PlacedOperation] = []
    collect(plan.modelStructure, plan: plan, prefix: "", into: &placed)
    return placed
}

@available(macOS 14.4, iOS 17.4, *)
private func unitName(_ device: MLComputeDevice) -> String {
    switch device {
    case .cpu: return "CPU"
    case .gpu: return "GPU"
    case .neuralEngine: return "NE"
    @unknown default: return "other"
    }
}

@available(macOS 14.4, iOS 17.4, *)
private func collect(_ structure: MLModelStructure, plan: MLComputePlan, prefix: String, into placed: inout [PlacedOperation]) {
    switch structure {
    case .program(let program):
        // "main" is what a prediction runs; other functions only when there is no main.
        let functions = program.functions["main"].map { [$0] }
            ?? program.functions.keys.sorted().compactMap { program.functions[$0] }
        for function in functions {
            walk(function.block, plan: plan, prefix: prefix, into: &placed)
        }
    case .neuralNetwork(let network):
        for layer in network.layers {
            guard let usage = plan.deviceUsage(for: layer) else { continue }
            placed.append(PlacedOperation(name: prefix + layer.name, type: layer.type,
                                          computeUnit: unitName(usage.preferred), estimatedCost: nil))
        }
    case .pipeline(let pipeline):
        for (i, sub) in pipeline.subModels.enumerated() {
            let name = i < pipeline.subModelNames.count ? pipeline.subModelNames[i] : "model\(i)"
            collect(sub, plan: plan, prefix: prefix + name + "/", into: &placed)
        }
    case .unsupported:
        break
    @unknown default:
        break
    }
}

@available(macOS 14.4, iOS 17.4, *)
private func walk(_ block: MLModelStructure.Program.Block, plan: MLComputePlan, prefix: String,
                  into placed: inout [PlacedOperation]) {
    for operation in block.operations {
        // No usage for operations that do not run on a device (consts).
        if let usage = plan.deviceUsage(for: operation) {
            let name = operation.outputs.first?.name ?? operation.operatorName
            placed.append(PlacedOperation(name: prefix + name, type: operation.operatorName,
                                          computeUnit: unitName(usage.preferred),
                                          estimatedCost: plan.estimatedCost(of: operation)?.weight))
        }
        for nested in operation.blocks {
            walk(nested, plan: plan, prefix: prefix, into: &placed)
        }
    }
}

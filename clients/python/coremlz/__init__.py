"""coremlz: compress Core ML models on a coremlzd server from Python.

    import coremlz
    result = coremlz.compress("Model.mlpackage", "Model-4bit.mlpackage",
                              server="127.0.0.1:50051", palettize=4)
    print(result.ratio, result.warnings)

See docs/python.md.
"""

from .client import Client, CompressResult, PlanResult, compress, inspect, plan, runners
from .errors import CoremlzError

__all__ = ["Client", "CompressResult", "CoremlzError", "PlanResult", "compress", "inspect", "plan", "runners"]

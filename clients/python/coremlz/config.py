"""Compression configs in the shape coremltools' OptimizationConfig takes.

A config is sent to the server as coremltools-shaped YAML/JSON text, so a dict
written for coremltools (``{"config_type": "OpPalettizerConfig",
"global_config": {"nbits": 4}}``), a YAML string, a path to a YAML/JSON file,
or technique keywords (``palettize=4``) all mean the same thing here as in
``coremlz compress``. See docs/config.md for every field.
"""

import json
import os
from typing import Any, Dict, Optional, Union

import grpc

from .errors import CoremlzError

ConfigLike = Union[None, str, Dict[str, Any]]


def _technique_config(palettize=None, mode=None, group_size=None, cluster_dim=None, per_channel_scale=False,
                      quantize=None, quant_mode=None, granularity=None, block_size=None, prune=None,
                      prune_block_size=None, n_m=None, prune_threshold=None, fp16=False,
                      weight_threshold=None) -> Optional[Dict[str, Any]]:
    """The same config ``coremlz compress`` builds from its flags."""
    passes = []
    chosen = [name for name, on in (("palettize", palettize is not None), ("quantize", quantize is not None),
                                    ("fp16", bool(fp16))) if on]
    if len(chosen) > 1:
        raise CoremlzError(grpc.StatusCode.INVALID_ARGUMENT, "choose one of palettize, quantize and fp16")

    def common(cfg: Dict[str, Any]) -> Dict[str, Any]:
        if weight_threshold is not None:
            cfg["weight_threshold"] = int(weight_threshold)
        return cfg

    pruning = prune is not None or n_m is not None or prune_threshold is not None
    if prune is not None or n_m is not None:
        cfg = {}
        if prune is not None:
            cfg["target_sparsity"] = float(prune)
        if prune_block_size is not None:
            cfg["block_size"] = int(prune_block_size)
        if n_m is not None:
            n, m = (n_m.split(":") if isinstance(n_m, str) else n_m)
            cfg["n_m_ratio"] = [int(n), int(m)]
        passes.append({"config_type": "OpMagnitudePrunerConfig", "global_config": common(cfg)})
    elif prune_threshold is not None:
        passes.append({"config_type": "OpThresholdPrunerConfig",
                       "global_config": common({"threshold": float(prune_threshold),
                                                "minimum_sparsity_percentile": 0.0})})
    if palettize is not None:
        cfg = {"nbits": int(palettize)}
        if mode:
            cfg["mode"] = mode
        if group_size is not None:
            cfg["granularity"] = "per_grouped_channel"
            cfg["group_size"] = int(group_size)
        if cluster_dim is not None:
            cfg["cluster_dim"] = int(cluster_dim)
        if per_channel_scale:
            cfg["enable_per_channel_scale"] = True
        passes.append({"config_type": "OpPalettizerConfig", "global_config": common(cfg)})
    if quantize is not None:
        cfg = {"dtype": quantize}
        if quant_mode:
            cfg["mode"] = quant_mode
        if granularity:
            cfg["granularity"] = granularity
        if block_size is not None:
            cfg["block_size"] = int(block_size)
            cfg.setdefault("granularity", "per_block")
        passes.append({"config_type": "OpLinearQuantizerConfig", "global_config": common(cfg)})
    if fp16:
        passes.append({"config_type": "Fp16Config", "global_config": common({})})
    if not passes:
        return None
    if len(passes) == 1:
        return passes[0]
    if pruning and len(passes) == 2:
        passes[1]["joint_compression"] = True
    return {"passes": passes}


def config_text(config: ConfigLike = None, **techniques) -> str:
    """The YAML/JSON text for a config given any way the client accepts."""
    given = [k for k, v in techniques.items() if v not in (None, False)]
    if config is not None and given:
        raise CoremlzError(grpc.StatusCode.INVALID_ARGUMENT,
                           f"pass either config or technique keywords, not both (got config and {', '.join(given)})")
    if config is None:
        built = _technique_config(**techniques)
        if built is None:
            raise CoremlzError(grpc.StatusCode.INVALID_ARGUMENT,
                               "no compression requested: pass config=... or a technique such as palettize=4")
        return json.dumps(built)
    if isinstance(config, dict):
        return json.dumps(config)
    if isinstance(config, str):
        if "\n" not in config and os.path.isfile(config):
            with open(config, "r", encoding="utf-8") as f:
                return f.read()
        return config
    raise CoremlzError(grpc.StatusCode.INVALID_ARGUMENT,
                       f"config must be a dict, YAML/JSON text or a file path, not {type(config).__name__}")

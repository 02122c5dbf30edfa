"""The coremlz client: compress, plan, inspect and list runners over gRPC."""

import json
import os
import re
import threading
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional

import grpc
from google.protobuf import json_format

from . import files as _files
from .config import ConfigLike, config_text
from .errors import CoremlzError
from .v1 import compressor_pb2, compressor_pb2_grpc, plan_pb2

# progress(phase, done, total, detail): phase is "upload", "queued",
# "compress" (done/total in weights, detail the current weight), "download".
ProgressCallback = Callable[[str, int, int, str], None]


def _dict(message) -> Dict[str, Any]:
    return json_format.MessageToDict(message, preserving_proto_field_name=True,
                                     including_default_value_fields=True)


@dataclass
class CompressResult:
    """What a Compress call returned: the per-weight report, the totals and
    warnings (the same numbers as ``coremlz compress --report``), where the
    artifact was written, and validation results if asked for."""
    output: Optional[str]
    job_id: str
    summary: Dict[str, Any]
    weights: List[Dict[str, Any]]
    validations: List[Dict[str, Any]] = field(default_factory=list)

    @property
    def warnings(self) -> List[str]:
        return list(self.summary.get("warnings", []))

    @property
    def ratio(self) -> float:
        return float(self.summary.get("ratio_vs_original", 0.0))


@dataclass
class PlanResult:
    """What a Plan call returned: the OptimizationConfig YAML (the same text
    ``coremlz plan --config`` writes, accepted by ``compress(config=...)`` and
    by coremltools), the plan report (``--report``'s JSON, parsed), the
    Pareto curve as SVG, the structured result, and with ``apply`` where the
    compressed model was written. ``predicted`` and ``measured`` are kept
    apart as in the report: only ``measured`` comes from the compressed
    model itself."""
    config_yaml: str
    report: Dict[str, Any]
    pareto_svg: str
    result: Dict[str, Any]
    output: Optional[str] = None
    job_id: str = ""

    @property
    def measured(self) -> Dict[str, Any]:
        """model_bytes, weight_bytes, bits_per_weight, output_psnr_db of the
        compressed model itself."""
        return dict(self.report.get("measured", {}).get("values", {}))

    @property
    def predicted(self) -> Dict[str, Any]:
        """The same quantities as the trials and the additive model predict them."""
        return dict(self.report.get("predicted", {}).get("values", {}))


_SIZE_RE = re.compile(r"^\s*([0-9]+(?:\.[0-9]+)?)\s*([KMGT]?)(?:i?B)?\s*$", re.IGNORECASE)


def _byte_size(value) -> float:
    """Bytes from an int or text such as "12MB", "1.5G" or "10GiB" (K/M/G/T
    are powers of 1024, as the CLI's --size reads them)."""
    if isinstance(value, bool):
        raise CoremlzError(grpc.StatusCode.INVALID_ARGUMENT, f"size {value!r} is not a size")
    if isinstance(value, (int, float)):
        return float(value)
    m = _SIZE_RE.match(str(value))
    if not m:
        raise CoremlzError(grpc.StatusCode.INVALID_ARGUMENT,
                           f"size {value!r} is not a size (bytes, or a number with K, M, G or T)")
    scale = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}[m.group(2).upper()]
    return float(m.group(1)) * scale


def _upload(request_type, header, root: str, files, progress: Optional[ProgressCallback],
            upload_error: List[BaseException]):
    """A streaming call's requests: the header, then every file's chunks,
    reporting "upload" progress. A file that changes while it is read ends
    the stream (the server sees it short) and its CoremlzError is left in
    ``upload_error`` for the caller to raise."""
    total = sum(size for _, size, _ in files)
    yield request_type(header=header)
    sent = 0
    try:
        for index, offset, data in _files.chunks(root, files):
            yield request_type(chunk=compressor_pb2.FileChunk(file_index=index, offset=offset, data=data))
            sent += len(data)
            if progress:
                progress("upload", sent, total, "")
    except CoremlzError as e:
        upload_error.append(e)


def _read_file(path: Optional[str]) -> Optional[bytes]:
    if path is None:
        return None
    with open(path, "rb") as f:
        return f.read()


def _token_from_file(path: str) -> str:
    """The first line that is neither blank nor a '#' comment, as the CLI reads it."""
    for line in _read_file(path).decode("utf-8").splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            return line
    raise CoremlzError(grpc.StatusCode.INVALID_ARGUMENT, f"{path} holds no token")


class Client:
    """A connection to a coremlzd server.

    ``Client("host:50051")`` connects in plain text; ``tls_ca`` (and
    ``tls_cert``/``tls_key`` for mTLS) switch to TLS; ``token`` or
    ``token_file`` send a bearer token. ``timeout`` is each call's deadline in
    seconds. Use as a context manager or call ``close()``.
    """

    def __init__(self, server: str, *, token: Optional[str] = None, token_file: Optional[str] = None,
                 tls_ca: Optional[str] = None, tls_cert: Optional[str] = None, tls_key: Optional[str] = None,
                 timeout: float = 600.0):
        self.server = server
        self.timeout = timeout
        if token_file is not None:
            token = _token_from_file(token_file)
        self._metadata = [("authorization", f"Bearer {token}")] if token else []
        options = [("grpc.max_receive_message_length", 8 << 20)]
        if tls_ca or tls_cert:
            creds = grpc.ssl_channel_credentials(root_certificates=_read_file(tls_ca),
                                                 private_key=_read_file(tls_key),
                                                 certificate_chain=_read_file(tls_cert))
            self._channel = grpc.secure_channel(server, creds, options)
        else:
            self._channel = grpc.insecure_channel(server, options)
        self._stub = compressor_pb2_grpc.CompressorStub(self._channel)

    def close(self) -> None:
        self._channel.close()

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- Replies of Compress and Plan -----------------------------------------
    def _receive(self, call, staged, progress, upload_error, on_reply, missing):
        """Reads a Compress or Plan call to its end: the job id, the artifact
        into ``staged`` (download progress), every other reply to
        ``on_reply(kind, r)``. Then ``missing()`` says what the call failed to
        send (None: nothing) and the artifact is committed. Returns the job
        id and the written path (None without an artifact). The upload's own
        error wins over the status it caused; a client-side error cancels the
        call; a staged artifact is discarded unless committed."""
        job_id, written = "", None
        try:
            for r in call:
                kind = r.WhichOneof("msg")
                if kind == "accepted":
                    job_id = r.accepted.job_id
                elif kind == "artifact_file":
                    if staged:
                        info = r.artifact_file.info
                        staged.declare(r.artifact_file.file_index, info.path, info.size, info.sha256)
                elif kind == "artifact_chunk":
                    if staged:
                        c = r.artifact_chunk
                        staged.add(c.file_index, c.offset, c.data)
                        if progress:
                            progress("download", staged.done, staged.total, "")
                else:
                    on_reply(kind, r)
            if upload_error:
                raise upload_error[0]
            what = missing()
            if what:
                raise CoremlzError(grpc.StatusCode.DATA_LOSS, what)
            written = staged.commit() if staged else None
            staged = None
        except grpc.RpcError as e:
            if upload_error:
                raise upload_error[0]
            raise CoremlzError.from_rpc(e, self.server) from None
        except CoremlzError:
            call.cancel()
            raise
        finally:
            if staged:
                staged.discard()
        return job_id, written

    # -- Compress ---------------------------------------------------------
    def compress(self, model: str, output: Optional[str] = None, *, config: ConfigLike = None,
                 target: Optional[str] = None, force: bool = False, report_only: bool = False,
                 validate: Optional[str] = None, validate_iterations: Optional[int] = None,
                 progress: Optional[ProgressCallback] = None, cache: bool = True, check: int = 0,
                 **techniques) -> CompressResult:
        """Compresses ``model`` (an .mlpackage directory or .mlmodel file) on the
        server and writes the result to ``output``.

        The config is ``config`` (a coremltools-shaped dict, YAML/JSON text or
        a file path) or technique keywords as ``coremlz compress`` has flags:
        ``palettize=4`` (``mode``, ``group_size``, ``cluster_dim``,
        ``per_channel_scale``), ``quantize="int8"`` (``quant_mode``,
        ``granularity``, ``block_size``), ``prune=0.5`` (``prune_block_size``),
        ``n_m="2:4"``, ``prune_threshold=...``, ``fp16=True``,
        ``weight_threshold=N``; pruning with palettize/quantize is joint.

        ``output`` must not exist unless ``force`` (which replaces only a Core
        ML model); it is checked before anything is uploaded and written only
        when every file arrived with the right size and SHA-256.

        ``cache=False`` makes a server with a result cache compute anyway.
        ``check=N`` also runs the original and the compressed model on N
        synthetic inputs (the server's reference CPU executor) and puts each
        output's fidelity in ``summary["output_checks"]``.
        """
        text = config_text(config, **techniques)
        if not report_only and not output:
            raise CoremlzError(grpc.StatusCode.INVALID_ARGUMENT, "output is required unless report_only=True")
        out = None if report_only else _files.check_output(model, output, force)
        root, files = _files.describe_model(model)

        header = compressor_pb2.CompressHeader(config_yaml=text, report_only=report_only, target=target or "",
                                               no_cache=not cache, check_samples=int(check))
        for rel, size, sha in files:
            header.files.add(path=rel, size=size, sha256=sha)
        if validate:
            header.validation.enabled = True
            header.validation.compare_outputs = True
            if validate != "any":
                header.validation.device.model = validate
            if validate_iterations:
                header.validation.iterations = int(validate_iterations)
        upload_error: List[BaseException] = []
        requests = _upload(compressor_pb2.CompressRequest, header, root, files, progress, upload_error)

        staged = None if report_only else _files.StagedArtifact(out, _files.model_kind(model))
        summary, have_summary = None, False
        weights, validations = [], []

        def on_reply(kind, r):
            nonlocal summary, have_summary
            if kind == "progress" and progress:
                p = r.progress
                phase = compressor_pb2.Progress.Phase.Name(p.phase).lower()
                if p.phase == compressor_pb2.Progress.COMPRESS:
                    progress("compress", p.weights_done, p.weights_total, p.current)
                elif p.phase == compressor_pb2.Progress.QUEUED:
                    progress("queued", p.queue_position, 0, "")
                elif p.phase != compressor_pb2.Progress.UPLOAD:
                    progress(phase, p.bytes_done, p.bytes_total, p.current)
            elif kind == "weight":
                weights.append(_dict(r.weight))
            elif kind == "summary":
                summary, have_summary = _dict(r.summary), True
            elif kind == "validation":
                validations.append(_dict(r.validation))

        call = self._stub.Compress(requests, timeout=self.timeout, metadata=self._metadata)
        job_id, written = self._receive(call, staged, progress, upload_error, on_reply,
                                        lambda: None if have_summary else "the server ended the call without a summary")
        return CompressResult(output=written, job_id=job_id, summary=summary, weights=weights,
                              validations=validations)

    # -- Plan -------------------------------------------------------------
    def plan(self, model: str, *, size=None, bits: Optional[float] = None, min_psnr: Optional[float] = None,
             candidates: Optional[List[str]] = None, samples: int = 4, seed: int = 0, function: str = "",
             weight_threshold: Optional[int] = None, apply: Optional[str] = None, force: bool = False,
             progress: Optional[ProgressCallback] = None, cache: bool = True) -> PlanResult:
        """Chooses a compression per weight for one target, on the server, as
        ``coremlz plan --server`` does: ``size`` (bytes of the whole model, an
        int or text such as "12MB"), ``bits`` (average bits per planned
        weight) or ``min_psnr`` (output PSNR floor in dB) - exactly one.

        ``candidates``: e.g. ``["palettize4", "int8", "keep"]`` (default: the
        planner's for the model's deployment target). ``samples``/``seed``:
        the synthetic inputs the outputs are measured on. ``apply=PATH`` also
        writes the compressed model there (checked like ``compress``'s output
        before anything is uploaded; ``force`` replaces only a Core ML model).
        ``cache=False`` makes a server with a result cache plan anyway (the
        same model, target and options are otherwise answered from it).

        ``progress(phase, done, total, detail)``: phases "upload", "queued",
        "study", "trials" (done/total trials), "rounds" (done = round),
        "pareto", "apply", "download".

        Errors are CoremlzError: INVALID_ARGUMENT for a target that makes no
        sense (not positive, above the original, below the smallest the
        candidates reach), OUT_OF_RANGE when no plan meets it (the message
        has the best measured), CANCELLED / DEADLINE_EXCEEDED.
        """
        given = [(k, v) for k, v in (("size", size), ("bits", bits), ("min_psnr", min_psnr)) if v is not None]
        if len(given) != 1:
            raise CoremlzError(grpc.StatusCode.INVALID_ARGUMENT,
                               "plan needs exactly one target: size, bits or min_psnr")
        kind, value = given[0]
        target = plan_pb2.PlanTarget()
        if kind == "size":
            target.kind, target.value = plan_pb2.PlanTarget.SIZE, _byte_size(value)
        elif kind == "bits":
            target.kind, target.value = plan_pb2.PlanTarget.BITS, float(value)
        else:
            target.kind, target.value = plan_pb2.PlanTarget.MIN_PSNR, float(value)
        if isinstance(candidates, str):
            candidates = [c for c in candidates.split(",") if c]
        out = _files.check_output(model, apply, force) if apply else None
        root, files = _files.describe_model(model)
        header = compressor_pb2.PlanHeader(model_name=model, target=target, candidates=",".join(candidates or []),
                                           samples=int(samples), seed=int(seed), function=function,
                                           apply=bool(apply), no_cache=not cache)
        if weight_threshold is not None:
            header.weight_threshold = int(weight_threshold)
        for rel, fsize, sha in files:
            header.files.add(path=rel, size=fsize, sha256=sha)
        upload_error: List[BaseException] = []
        requests = _upload(compressor_pb2.PlanRequest, header, root, files, progress, upload_error)

        phases = compressor_pb2.PlanProgress
        staged = _files.StagedArtifact(out, _files.model_kind(model)) if out else None
        outputs = None

        def on_reply(kind, r):
            nonlocal outputs
            if kind == "progress" and progress:
                p = r.progress
                name = phases.Phase.Name(p.phase).lower()
                if p.phase == phases.TRIALS:
                    progress("trials", p.trials_done, p.trials_total, "")
                elif p.phase == phases.QUEUED:
                    progress("queued", p.queue_position, 0, "")
                elif p.phase == phases.ROUNDS:
                    progress("rounds", p.round, 0, "")
                elif p.phase != phases.UPLOAD:
                    progress(name, p.bytes_done, p.bytes_total, "")
            elif kind == "outputs":
                outputs = r.outputs

        call = self._stub.Plan(requests, timeout=self.timeout, metadata=self._metadata)
        job_id, written = self._receive(
            call, staged, progress, upload_error, on_reply,
            lambda: None if outputs is not None else "the server ended the call without the plan")
        return PlanResult(config_yaml=outputs.config_yaml, report=json.loads(outputs.report_json),
                          pareto_svg=outputs.pareto_svg, result=_dict(outputs.result), output=written,
                          job_id=job_id)

    # -- Inspect ----------------------------------------------------------
    def inspect(self, model: str, *, min_elements: int = 10, statistics: bool = True,
                progress: Optional[ProgressCallback] = None) -> Dict[str, Any]:
        """The model's weights inventory (like coremltools' get_weights_metadata),
        as a dict: path, kind, inputs, outputs, weights [...], weight_bytes.
        ``progress(phase, done, total, detail)`` hears the upload."""
        root, files = _files.describe_model(model)
        header = compressor_pb2.InspectHeader(min_elements=min_elements, skip_statistics=not statistics)
        for rel, size, sha in files:
            header.files.add(path=rel, size=size, sha256=sha)
        upload_error: List[BaseException] = []
        requests = _upload(compressor_pb2.InspectRequest, header, root, files, progress, upload_error)
        try:
            response = self._stub.Inspect(requests, timeout=self.timeout, metadata=self._metadata)
        except grpc.RpcError as e:
            # A file that changed while it was read is the cause of whatever the server said.
            if upload_error:
                raise upload_error[0] from None
            raise CoremlzError.from_rpc(e, self.server) from None
        if upload_error:
            raise upload_error[0]
        inventory = _dict(response.inventory)
        inventory["path"] = model
        return inventory

    # -- Runners ----------------------------------------------------------
    def runners(self) -> List[Dict[str, Any]]:
        """The server's device runners and their devices, as last probed."""
        try:
            response = self._stub.ListRunners(compressor_pb2.ListRunnersRequest(), timeout=self.timeout,
                                              metadata=self._metadata)
        except grpc.RpcError as e:
            raise CoremlzError.from_rpc(e, self.server) from None
        return [_dict(r) for r in response.runners]


def compress(model: str, output: Optional[str] = None, *, server: str, **kwargs) -> CompressResult:
    """One-call form of ``Client(server).compress(...)``; connection options
    (token, token_file, tls_ca, tls_cert, tls_key, timeout) go to the Client."""
    conn = {k: kwargs.pop(k) for k in ("token", "token_file", "tls_ca", "tls_cert", "tls_key", "timeout") if k in kwargs}
    with Client(server, **conn) as c:
        return c.compress(model, output, **kwargs)


def plan(model: str, *, server: str, **kwargs) -> PlanResult:
    """One-call form of ``Client(server).plan(...)``."""
    conn = {k: kwargs.pop(k) for k in ("token", "token_file", "tls_ca", "tls_cert", "tls_key", "timeout") if k in kwargs}
    with Client(server, **conn) as c:
        return c.plan(model, **kwargs)


def inspect(model: str, *, server: str, **kwargs) -> Dict[str, Any]:
    """One-call form of ``Client(server).inspect(...)``."""
    conn = {k: kwargs.pop(k) for k in ("token", "token_file", "tls_ca", "tls_cert", "tls_key", "timeout") if k in kwargs}
    with Client(server, **conn) as c:
        return c.inspect(model, **kwargs)


def runners(*, server: str, **conn) -> List[Dict[str, Any]]:
    """One-call form of ``Client(server).runners()``."""
    with Client(server, **conn) as c:
        return c.runners()

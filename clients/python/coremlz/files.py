"""What is uploaded and downloaded: a model's files in the server's order, with
sizes and SHA-256, and the staged, all-or-nothing write of an artifact."""

import hashlib
import json
import os
import shutil
import tempfile
from typing import Iterator, List, Optional, Tuple

import grpc

from .errors import CoremlzError

CHUNK_BYTES = 1 << 20  # the API's largest chunk


def _sha256(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(CHUNK_BYTES), b""):
            h.update(block)
    return h.hexdigest()


def _package_model_path(root: str) -> str:
    """The root model's package-relative path, as Manifest.json names it."""
    manifest_path = os.path.join(root, "Manifest.json")
    try:
        with open(manifest_path, "rb") as f:
            manifest = json.loads(f.read())
        item = manifest["itemInfoEntries"][manifest["rootModelIdentifier"]]
        return "Data/" + item["path"]
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise CoremlzError(grpc.StatusCode.INVALID_ARGUMENT, f"{manifest_path}: not a Core ML package manifest ({e})")


def describe_model(path: str) -> Tuple[str, List[Tuple[str, int, str]]]:
    """(root, [(relative path, size, sha256)]) in upload order: Manifest.json,
    the model spec, weight files, the rest - so the server can start on the
    program before the weights arrive."""
    if os.path.isdir(path):
        model = _package_model_path(path)
        rels = []
        for dirpath, _, names in os.walk(path):
            for name in names:
                full = os.path.join(dirpath, name)
                if os.path.islink(full) or not os.path.isfile(full):
                    continue
                rels.append(os.path.relpath(full, path).replace(os.sep, "/"))

        def rank(rel: str) -> int:
            if rel == "Manifest.json":
                return 0
            if rel == model:
                return 1
            if "/weights/" in rel:
                return 2
            return 3

        rels.sort()
        rels.sort(key=rank)
        return path, [(rel, os.path.getsize(os.path.join(path, rel)), _sha256(os.path.join(path, rel))) for rel in rels]
    if not os.path.exists(path):
        raise CoremlzError(grpc.StatusCode.NOT_FOUND, f"{path} does not exist")
    if not path.lower().endswith(".mlmodel"):
        raise CoremlzError(grpc.StatusCode.INVALID_ARGUMENT,
                           f"{path} is neither an .mlpackage directory nor an .mlmodel file")
    root = os.path.dirname(path) or "."
    name = os.path.basename(path)
    return root, [(name, os.path.getsize(path), _sha256(path))]


def chunks(root: str, files: List[Tuple[str, int, str]]) -> Iterator[Tuple[int, int, bytes]]:
    """(file index, offset, data) for every chunk of every file, in order."""
    for index, (rel, size, _) in enumerate(files):
        with open(os.path.join(root, rel), "rb") as f:
            offset = 0
            while offset < size:
                data = f.read(min(CHUNK_BYTES, size - offset))
                if not data:
                    raise CoremlzError(grpc.StatusCode.DATA_LOSS,
                                       f"{rel} changed while being sent (shorter than its {size} bytes)")
                yield index, offset, data
                offset += len(data)


def _is_model(path: str) -> bool:
    if os.path.islink(path):
        return False
    if os.path.isdir(path):
        return os.path.isfile(os.path.join(path, "Manifest.json"))
    return os.path.isfile(path) and path.lower().endswith(".mlmodel")


_KIND_WORDS = {"package": "an .mlpackage directory", "file": "a single-file .mlmodel"}


def model_kind(path: str) -> Optional[str]:
    """"package" for a directory, "file" for a file, None if neither: the
    compressed model has the input's kind (coremlz never converts)."""
    if os.path.isdir(path):
        return "package"
    if os.path.isfile(path):
        return "file"
    return None


def check_output(input_path: str, output: str, force: bool) -> str:
    """Refuses, before any upload, an output that would destroy something the
    caller did not ask to replace: an existing path without ``force``, anything
    but a Core ML model even with it, a model of the other kind (an .mlpackage
    directory for an .mlmodel input, or the reverse) even with it, the input
    itself, a path inside the input or one that contains it; and an output
    whose suffix names the other kind, with the name to use. Returns the
    normalised output path."""
    if not output or output.strip() == "":
        raise CoremlzError(grpc.StatusCode.INVALID_ARGUMENT, "empty output path")
    out = os.path.normpath(output)
    if os.path.basename(os.path.abspath(out)) in ("", ".", "..") or out in (".", "..", os.sep):
        raise CoremlzError(grpc.StatusCode.INVALID_ARGUMENT, f"{output} is a directory, not a model path")
    kind = model_kind(input_path)
    if kind:
        other = "file" if kind == "package" else "package"
        wrong, right = (".mlmodel", ".mlpackage") if kind == "package" else (".mlpackage", ".mlmodel")
        if out.lower().endswith(wrong):
            raise CoremlzError(grpc.StatusCode.INVALID_ARGUMENT,
                               f"the output {out} has the suffix of {_KIND_WORDS[other]}, but the input {input_path} is "
                               f"{_KIND_WORDS[kind]} and the compressed model is one too (coremlz does not convert "
                               f"between the two kinds); name the output {out[:-len(wrong)] + right}")
    real_in = os.path.realpath(input_path)
    real_out = os.path.realpath(out)
    if real_out == real_in:
        raise CoremlzError(grpc.StatusCode.INVALID_ARGUMENT, f"the output {output} is the input model")
    if real_out.startswith(real_in + os.sep):
        raise CoremlzError(grpc.StatusCode.INVALID_ARGUMENT, f"the output {output} is inside the input model")
    if real_in.startswith(real_out + os.sep):
        raise CoremlzError(grpc.StatusCode.INVALID_ARGUMENT, f"the output {output} contains the input model")
    if os.path.lexists(out):
        if not force:
            raise CoremlzError(grpc.StatusCode.ALREADY_EXISTS, f"{output} already exists (pass force=True to replace it)")
        if not _is_model(out):
            raise CoremlzError(grpc.StatusCode.INVALID_ARGUMENT,
                               f"{output} exists and is not a Core ML model; force replaces only a model")
        existing = model_kind(out)
        if kind and existing != kind:
            raise CoremlzError(grpc.StatusCode.ALREADY_EXISTS,
                               f"{output} is {_KIND_WORDS[existing]} but the compressed model is {_KIND_WORDS[kind]}; "
                               "coremlz does not replace one kind of model with the other, even with force")
    parent = os.path.dirname(os.path.abspath(out))
    if os.path.isdir(parent) and not os.access(parent, os.W_OK):
        raise CoremlzError(grpc.StatusCode.INVALID_ARGUMENT, f"cannot write to {parent}: permission denied")
    return out


class StagedArtifact:
    """Receives the artifact's files into a private directory beside the
    output, checks each one's size and SHA-256, and moves the whole artifact
    into place only when every file is complete (commit); otherwise nothing at
    the destination changes."""

    def __init__(self, output: str, kind: Optional[str] = None):
        self.output = output
        self.kind = kind  # "package" / "file": only that kind is committed
        parent = os.path.dirname(os.path.abspath(output))
        try:
            os.makedirs(parent, exist_ok=True)
            self.staging = tempfile.mkdtemp(prefix=".coremlz-download-", dir=parent)
        except OSError as e:
            raise CoremlzError(grpc.StatusCode.INVALID_ARGUMENT, f"cannot write next to {output}: {e.strerror}")
        self.files = []  # [relative path, size, sha256, received, hasher, handle]
        self.total = 0
        self.done = 0

    def declare(self, index: int, rel: str, size: int, sha256: str) -> None:
        if index != len(self.files):
            raise CoremlzError(grpc.StatusCode.DATA_LOSS, f"artifact file {index} announced out of order")
        parts = rel.split("/")
        if not rel or rel.startswith("/") or any(p in ("", ".", "..") for p in parts):
            raise CoremlzError(grpc.StatusCode.DATA_LOSS, f"the server sent an unsafe artifact path {rel!r}")
        self._close_current()
        path = os.path.join(self.staging, *parts)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        self.files.append([rel, size, sha256, 0, hashlib.sha256(), open(path, "wb")])
        self.total += size

    def add(self, index: int, offset: int, data: bytes) -> None:
        if index != len(self.files) - 1 or index < 0:
            raise CoremlzError(grpc.StatusCode.DATA_LOSS, f"artifact chunk for file {index} out of order")
        f = self.files[index]
        if offset != f[3] or f[3] + len(data) > f[1]:
            raise CoremlzError(grpc.StatusCode.DATA_LOSS, f"artifact chunk of {f[0]} at offset {offset} out of order or past its size")
        f[5].write(data)
        f[4].update(data)
        f[3] += len(data)
        self.done += len(data)

    def _close_current(self) -> None:
        if self.files and self.files[-1][5] is not None:
            self.files[-1][5].close()
            self.files[-1][5] = None

    def commit(self) -> str:
        self._close_current()
        if not self.files:
            raise CoremlzError(grpc.StatusCode.DATA_LOSS, "the server sent no artifact")
        for rel, size, sha256, received, hasher, _ in self.files:
            if received != size:
                raise CoremlzError(grpc.StatusCode.DATA_LOSS, f"{rel}: received {received} of {size} bytes")
            if hasher.hexdigest() != sha256:
                raise CoremlzError(grpc.StatusCode.DATA_LOSS, f"{rel}: SHA-256 mismatch")
        produced = self.staging
        if len(self.files) == 1 and "/" not in self.files[0][0] and self.files[0][0] != "Manifest.json":
            produced = os.path.join(self.staging, self.files[0][0])  # a NeuralNetwork's one .mlmodel
        if self.kind and model_kind(produced) != self.kind:
            raise CoremlzError(grpc.StatusCode.INTERNAL,
                               f"the server sent {_KIND_WORDS[model_kind(produced) or 'file']}, not "
                               f"{_KIND_WORDS[self.kind]} like the input; nothing was written to {self.output}")
        # Move the old output aside first and drop it only after the new one is
        # in place: a failure in between leaves one of them, never neither.
        aside = None
        if os.path.lexists(self.output):
            aside = self.output + ".coremlz-old"
            n = 0
            while os.path.lexists(aside):
                n += 1
                aside = f"{self.output}.coremlz-old{n}"
            os.rename(self.output, aside)
        try:
            os.rename(produced, self.output)
        except OSError:
            if aside:
                os.rename(aside, self.output)
            raise
        if aside:
            if os.path.isdir(aside) and not os.path.islink(aside):
                shutil.rmtree(aside)
            else:
                os.remove(aside)
        return self.output

    def discard(self) -> None:
        self._close_current()
        shutil.rmtree(self.staging, ignore_errors=True)

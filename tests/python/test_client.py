"""The Python client against a real coremlzd: the same bytes as the C++ CLI,
configs in every accepted shape, statuses as exceptions, outputs never
clobbered, integrity checked."""

import filecmp
import hashlib
import json
import os
import shutil
import subprocess

import grpc
import pytest

import coremlz
from coremlz import files as cz_files
from conftest import Daemon, cli, demo_model, shared_model


def tree_digest(path):
    """SHA-256 over every file's relative path and bytes (one file: its bytes)."""
    h = hashlib.sha256()
    if os.path.isfile(path):
        h.update(open(path, "rb").read())
        return h.hexdigest()
    for dirpath, dirnames, names in os.walk(path):
        dirnames.sort()
        for name in sorted(names):
            full = os.path.join(dirpath, name)
            h.update(os.path.relpath(full, path).encode())
            h.update(open(full, "rb").read())
    return h.hexdigest()


def tree_size(path):
    return sum(os.path.getsize(os.path.join(d, n)) for d, _, names in os.walk(path) for n in names)


def copy_model(src, scratch):
    dst = os.path.join(scratch, os.path.basename(src))
    (shutil.copytree if os.path.isdir(src) else shutil.copy)(src, dst)
    return dst


def test_compress_gives_the_same_bytes_as_the_cli(server, scratch):
    model = copy_model(demo_model(), scratch)
    out = os.path.join(scratch, "py.mlpackage")
    events = []
    result = coremlz.compress(model, out, server=server.address, palettize=4,
                              progress=lambda phase, done, total, detail: events.append(phase))
    assert result.output == out
    assert result.job_id
    assert result.summary["weights_compressed"] > 0
    assert result.ratio > 3
    assert any(w["technique"] == "palettize" for w in result.weights)
    assert {"upload", "compress", "download"} <= set(events)

    remote_cli = os.path.join(scratch, "cli_remote.mlpackage")
    embedded = os.path.join(scratch, "cli_embedded.mlpackage")
    r = subprocess.run([cli(), "compress", model, "-o", remote_cli, "--palettize", "4", "--server", server.address,
                        "--quiet"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    r = subprocess.run([cli(), "compress", model, "-o", embedded, "--palettize", "4", "--quiet"],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert tree_digest(out) == tree_digest(remote_cli) == tree_digest(embedded)


def test_every_config_shape_means_the_same(server, scratch):
    model = copy_model(demo_model(), scratch)
    as_dict = {"config_type": "OpLinearQuantizerConfig", "global_config": {"dtype": "int8"}}
    yaml_text = "config_type: OpLinearQuantizerConfig\nglobal_config:\n  dtype: int8\n"
    yaml_path = os.path.join(scratch, "int8.yaml")
    with open(yaml_path, "w") as f:
        f.write(yaml_text)
    digests = set()
    with coremlz.Client(server.address) as c:
        for i, kwargs in enumerate([{"config": as_dict}, {"config": yaml_text}, {"config": yaml_path},
                                    {"quantize": "int8"}]):
            out = os.path.join(scratch, f"q{i}.mlpackage")
            c.compress(model, out, **kwargs)
            digests.add(tree_digest(out))
    assert len(digests) == 1


def test_report_only_writes_nothing(server, scratch):
    model = copy_model(demo_model(), scratch)
    before = set(os.listdir(scratch))
    result = coremlz.Client(server.address).compress(model, report_only=True, palettize=6)
    assert result.output is None
    assert result.summary["weight_bytes_after"] < result.summary["weight_bytes_before"]
    assert set(os.listdir(scratch)) == before


def test_neural_network_model(server, scratch):
    model = copy_model(shared_model("models", "edsr_f32b5", "edsr_f32b5_fp32.mlmodel"), scratch)
    out = os.path.join(scratch, "edsr_fp16.mlmodel")
    result = coremlz.compress(model, out, server=server.address, fp16=True)
    assert os.path.isfile(out)
    assert result.summary["model_kind"] == "neuralnetwork"
    assert os.path.getsize(out) < os.path.getsize(model) * 0.6


def test_inspect_matches_the_cli(server, scratch):
    model = copy_model(demo_model(), scratch)
    inv = coremlz.inspect(model, server=server.address)
    r = subprocess.run([cli(), "inspect", model, "--json"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    expected = json.loads(r.stdout)
    assert [w["name"] for w in inv["weights"]] == [w["name"] for w in expected["weights"]]
    assert int(inv["weight_bytes"]) == int(expected["weight_bytes"])
    assert inv["kind"] == "mlprogram"


def test_runners_empty_without_a_runner_pool(server):
    assert coremlz.runners(server=server.address) == []


def test_bad_config_is_invalid_argument(server, scratch):
    model = copy_model(demo_model(), scratch)
    with pytest.raises(coremlz.CoremlzError) as e:
        coremlz.compress(model, os.path.join(scratch, "o.mlpackage"), server=server.address,
                         config={"config_type": "OpPalettizerConfig", "global_config": {"nbits": 5}})
    assert e.value.code == grpc.StatusCode.INVALID_ARGUMENT
    assert "nbits" in e.value.message
    assert not os.path.exists(os.path.join(scratch, "o.mlpackage"))
    with pytest.raises(coremlz.CoremlzError) as e:
        coremlz.compress(model, os.path.join(scratch, "o.mlpackage"), server=server.address)
    assert "no compression requested" in e.value.message
    with pytest.raises(coremlz.CoremlzError) as e:
        coremlz.compress(model, os.path.join(scratch, "o.mlpackage"), server=server.address, palettize=4,
                         quantize="int8")
    assert "choose one" in e.value.message


def test_unreachable_server_is_unavailable(scratch):
    model = copy_model(demo_model(), scratch)
    with pytest.raises(coremlz.CoremlzError) as e:
        coremlz.compress(model, os.path.join(scratch, "o.mlpackage"), server="127.0.0.1:1", timeout=5, palettize=4)
    assert e.value.code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)
    assert not any(n.startswith(".coremlz-download") for n in os.listdir(scratch))


def test_outputs_are_never_clobbered(server, scratch):
    model = copy_model(demo_model(), scratch)
    existing = os.path.join(scratch, "existing.mlpackage")
    shutil.copytree(model, existing)
    digest = tree_digest(existing)
    with pytest.raises(coremlz.CoremlzError) as e:
        coremlz.compress(model, existing, server=server.address, palettize=4)
    assert e.value.code == grpc.StatusCode.ALREADY_EXISTS
    assert tree_digest(existing) == digest

    # force replaces a model, and only a model.
    notes = os.path.join(scratch, "notes")
    os.mkdir(notes)
    with open(os.path.join(notes, "keep.txt"), "w") as f:
        f.write("mine")
    with pytest.raises(coremlz.CoremlzError) as e:
        coremlz.compress(model, notes, server=server.address, palettize=4, force=True)
    assert e.value.code == grpc.StatusCode.INVALID_ARGUMENT
    assert open(os.path.join(notes, "keep.txt")).read() == "mine"
    for bad in (model, os.path.join(model, "Data", "out.mlpackage"), scratch, ".", os.path.join(scratch, "")):
        with pytest.raises(coremlz.CoremlzError):
            coremlz.compress(model, bad, server=server.address, palettize=4, force=True)
    assert tree_digest(model) == tree_digest(demo_model())

    result = coremlz.compress(model, existing, server=server.address, palettize=4, force=True)
    assert result.output == existing
    assert tree_digest(existing) != digest
    assert not [n for n in os.listdir(scratch) if ".coremlz-" in n]


def test_the_output_has_the_input_kind(server, scratch):
    """A package compresses to a package and an .mlmodel to an .mlmodel: an
    output suffix of the other kind is refused before any upload, naming the
    suffix to use, as the CLI does; a model of the other kind is not replaced,
    even with force; and an artifact of the other kind is never committed."""
    pkg = copy_model(demo_model(), scratch)
    nn = copy_model(shared_model("models", "edsr_f32b5", "edsr_f32b5_fp32.mlmodel"), scratch)
    before = sorted(os.listdir(scratch))
    for model, out, right, kw in ((pkg, "x.mlmodel", "x.mlpackage", {"palettize": 4}),
                                  (pkg, "X.MLMODEL", "X.mlpackage", {"palettize": 4}),
                                  (nn, "y.mlpackage", "y.mlmodel", {"fp16": True})):
        with pytest.raises(coremlz.CoremlzError) as e:
            coremlz.compress(model, os.path.join(scratch, out), server=server.address, **kw)
        assert e.value.code == grpc.StatusCode.INVALID_ARGUMENT
        assert f"name the output {os.path.join(scratch, right)}" in e.value.message, e.value.message
    with pytest.raises(coremlz.CoremlzError) as e:
        coremlz.plan(pkg, server=server.address, bits=6, samples=1, apply=os.path.join(scratch, "p.mlmodel"))
    assert e.value.code == grpc.StatusCode.INVALID_ARGUMENT
    assert sorted(os.listdir(scratch)) == before

    # An existing model of the other kind, under a name without a suffix.
    other = os.path.join(scratch, "other")
    shutil.copytree(pkg, other)
    digest = tree_digest(other)
    with pytest.raises(coremlz.CoremlzError) as e:
        coremlz.compress(nn, other, server=server.address, fp16=True, force=True)
    assert e.value.code == grpc.StatusCode.ALREADY_EXISTS
    assert "does not replace one kind of model with the other" in e.value.message
    assert tree_digest(other) == digest

    staged = cz_files.StagedArtifact(os.path.join(scratch, "z.mlpackage"), "package")
    staged.declare(0, "z.mlmodel", 2, hashlib.sha256(b"ab").hexdigest())
    staged.add(0, 0, b"ab")
    with pytest.raises(coremlz.CoremlzError) as e:
        staged.commit()
    assert e.value.code == grpc.StatusCode.INTERNAL
    staged.discard()
    assert not os.path.exists(os.path.join(scratch, "z.mlpackage"))


def test_token_is_required_and_sent(scratch):
    token_file = os.path.join(scratch, "tokens")
    with open(token_file, "w") as f:
        f.write("# accepted tokens\nsecret-token-1\n")
    d = Daemon("--token-file", token_file)
    try:
        model = copy_model(demo_model(), scratch)
        with pytest.raises(coremlz.CoremlzError) as e:
            coremlz.inspect(model, server=d.address)
        assert e.value.code == grpc.StatusCode.UNAUTHENTICATED
        with pytest.raises(coremlz.CoremlzError) as e:
            coremlz.inspect(model, server=d.address, token="wrong")
        assert e.value.code == grpc.StatusCode.UNAUTHENTICATED
        assert coremlz.inspect(model, server=d.address, token="secret-token-1")["weights"]
        assert coremlz.inspect(model, server=d.address, token_file=token_file)["weights"]
    finally:
        d.stop()


def test_staged_artifact_checks_integrity(scratch):
    out = os.path.join(scratch, "a.mlmodel")
    staged = cz_files.StagedArtifact(out)
    staged.declare(0, "a.mlmodel", 4, hashlib.sha256(b"abcd").hexdigest())
    staged.add(0, 0, b"abcX")
    with pytest.raises(coremlz.CoremlzError) as e:
        staged.commit()
    assert e.value.code == grpc.StatusCode.DATA_LOSS
    staged.discard()
    assert os.listdir(scratch) == []

    staged = cz_files.StagedArtifact(out)
    with pytest.raises(coremlz.CoremlzError) as e:
        staged.declare(0, "../escape", 1, "")
    assert e.value.code == grpc.StatusCode.DATA_LOSS
    staged.declare(0, "a.mlmodel", 2, hashlib.sha256(b"ab").hexdigest())
    with pytest.raises(coremlz.CoremlzError):
        staged.add(0, 0, b"abc")  # past the announced size
    staged.discard()
    assert os.listdir(scratch) == []


def test_upload_order_puts_the_program_before_the_weights():
    root, files = cz_files.describe_model(demo_model())
    rels = [f[0] for f in files]
    assert rels[0] == "Manifest.json"
    assert rels[1] == "Data/com.apple.CoreML/model.mlmodel"
    assert rels[2] == "Data/com.apple.CoreML/weights/weight.bin"
    for rel, size, sha in files:
        data = open(os.path.join(root, rel), "rb").read()
        assert size == len(data) and sha == hashlib.sha256(data).hexdigest()


def test_output_check_comes_back_in_the_summary(server, scratch):
    model = copy_model(demo_model(), scratch)
    result = coremlz.Client(server.address).compress(model, report_only=True, palettize=8, check=2)
    assert result.summary["check_samples"] == 2
    assert "not Core ML" in result.summary["check_executor"]
    names = sorted(c["name"] for c in result.summary["output_checks"])
    assert names == ["new_cell_state", "new_hidden_state", "vad_output"]
    for c in result.summary["output_checks"]:
        assert c["psnr_db"] > 10 and c["cosine"] > 0.9


def transformer_model():
    return shared_model("models", "transformer_encoder_randinit", "transformer_encoder_randinit.mlpackage")


def test_plan_gives_what_the_cli_gives(server, scratch):
    model = copy_model(transformer_model(), scratch)
    applied = os.path.join(scratch, "py_plan.mlpackage")
    events = []
    result = coremlz.plan(model, server=server.address, bits=5, samples=2, apply=applied,
                          progress=lambda phase, done, total, detail: events.append((phase, done, total)))
    assert result.output == applied
    assert result.job_id
    assert "op_name_configs" in result.config_yaml
    assert result.pareto_svg.lstrip().startswith("<svg")
    assert result.result["target"]["kind"] == "BITS" and result.result["target"]["value"] == 5
    assert 0 < result.measured["bits_per_weight"] <= 5.0 + 1e-9
    assert result.measured["model_bytes"] == tree_size(applied)
    assert result.predicted["output_psnr_db"] > 0  # kept apart from the measurement
    trials = [e for e in events if e[0] == "trials"]
    assert trials and trials[-1][1] == trials[-1][2] > 0

    # The embedded CLI plans the same model to the same config and model.
    cfg = os.path.join(scratch, "cli.yaml")
    cli_applied = os.path.join(scratch, "cli_plan.mlpackage")
    r = subprocess.run([cli(), "plan", model, "--bits", "5", "--samples", "2", "--config", cfg, "--apply",
                        cli_applied], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert open(cfg).read() == result.config_yaml
    assert tree_digest(applied) == tree_digest(cli_applied)

    # The YAML is a config compress accepts, giving the applied bytes again.
    again = os.path.join(scratch, "again.mlpackage")
    coremlz.compress(model, again, server=server.address, config=result.config_yaml)
    assert tree_digest(again) == tree_digest(applied)


def test_plan_target_errors(server, scratch):
    model = copy_model(transformer_model(), scratch)
    with pytest.raises(coremlz.CoremlzError) as e:
        coremlz.plan(model, server=server.address)
    assert e.value.code == grpc.StatusCode.INVALID_ARGUMENT and "exactly one target" in str(e.value)
    with pytest.raises(coremlz.CoremlzError) as e:
        coremlz.plan(model, server=server.address, bits=4, min_psnr=30)
    assert e.value.code == grpc.StatusCode.INVALID_ARGUMENT
    with pytest.raises(coremlz.CoremlzError) as e:
        coremlz.plan(model, server=server.address, size="twelve")
    assert e.value.code == grpc.StatusCode.INVALID_ARGUMENT and "not a size" in str(e.value)
    # Targets that make no sense are refused by the server before any trial.
    for target in ({"min_psnr": -5}, {"size": 1}, {"size": "1T"}):
        with pytest.raises(coremlz.CoremlzError) as e:
            coremlz.plan(model, server=server.address, samples=1, **target)
        assert e.value.code == grpc.StatusCode.INVALID_ARGUMENT, (target, e.value)


def test_plan_apply_never_clobbers(server, scratch):
    model = copy_model(transformer_model(), scratch)
    precious = os.path.join(scratch, "notes.txt")
    with open(precious, "w") as f:
        f.write("keep me")
    for force in (False, True):
        with pytest.raises(coremlz.CoremlzError):
            coremlz.plan(model, server=server.address, bits=6, samples=1, apply=precious, force=force)
        assert open(precious).read() == "keep me"
    with pytest.raises(coremlz.CoremlzError):
        coremlz.plan(model, server=server.address, bits=6, samples=1, apply=model)
    assert tree_digest(model) == tree_digest(transformer_model())


def test_plan_size_units():
    from coremlz.client import _byte_size
    assert _byte_size(1000) == 1000
    assert _byte_size("12MB") == 12 * (1 << 20)
    assert _byte_size("1.5G") == 1.5 * (1 << 30)
    assert _byte_size("10GiB") == 10 * (1 << 30)
    assert _byte_size("512k") == 512 * 1024
    for bad in ("", "MB", "1X", "-3M", True):
        with pytest.raises(coremlz.CoremlzError):
            _byte_size(bad)


def test_a_file_changing_during_upload_is_the_error(server, scratch, monkeypatch):
    """A model file cut short while it is sent: inspect and compress raise the
    client's own DATA_LOSS naming the file, not the server's view of a short
    upload, and compress writes nothing."""
    model = copy_model(demo_model(), scratch)
    weights = os.path.join(model, "Data", "com.apple.CoreML", "weights", "weight.bin")
    real_chunks = cz_files.chunks

    def truncating_chunks(root, files):
        for index, offset, data in real_chunks(root, files):
            if files[index][0].endswith("weight.bin") and offset == 0:
                with open(weights, "r+b") as f:
                    f.truncate(len(data))  # the rest of the file is gone
            yield index, offset, data

    monkeypatch.setattr(cz_files, "chunks", truncating_chunks)
    monkeypatch.setattr(cz_files, "CHUNK_BYTES", 1 << 16)  # several chunks of the demo's weights
    original = open(weights, "rb").read()
    assert len(original) > 2 * cz_files.CHUNK_BYTES
    with pytest.raises(coremlz.CoremlzError) as e:
        coremlz.inspect(model, server=server.address)
    assert e.value.code == grpc.StatusCode.DATA_LOSS, e.value
    assert "weight.bin changed while being sent" in str(e.value)

    with open(weights, "wb") as f:
        f.write(original)
    out = os.path.join(scratch, "out.mlpackage")
    with pytest.raises(coremlz.CoremlzError) as e:
        coremlz.compress(model, out, server=server.address, palettize=4)
    assert e.value.code == grpc.StatusCode.DATA_LOSS, e.value
    assert "weight.bin changed while being sent" in str(e.value)
    assert not os.path.exists(out)

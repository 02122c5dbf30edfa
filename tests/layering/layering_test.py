#!/usr/bin/env python3
"""layering_test: the production sources follow README's layer table.

Runs check_layering.py on the repository (with allowed_exceptions.txt), and
on small synthetic trees written to a temporary directory, checked against
the real README, to show that the checker reports what it should.
Usage: layering_test.py SOURCE_DIR
"""

import os
import re
import subprocess
import sys
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
CHECKER = os.path.join(HERE, "check_layering.py")
SOURCE_DIR = None  # from the command line
sys.path.insert(0, HERE)
import check_layering  # noqa: E402


def run_checker(root, exceptions=None):
    command = [sys.executable, CHECKER, root, "--readme", os.path.join(SOURCE_DIR, "README.md")]
    if exceptions:
        command += ["--exceptions", exceptions]
    result = subprocess.run(command, capture_output=True, text=True)
    return result.returncode, result.stdout + result.stderr


def write_tree(root, files):
    for path, text in files.items():
        full = os.path.join(root, path)
        os.makedirs(os.path.dirname(full), exist_ok=True)
        with open(full, "w") as f:
            f.write(text)


def includes(*headers):
    return "".join(f'#include "{h}"\n' for h in headers)


class ReadmeTable(unittest.TestCase):
    def test_layers_in_readme_order(self):
        layers, by_prefix = check_layering.read_layers(os.path.join(SOURCE_DIR, "README.md"))
        libraries = [l.name for l in layers if not l.program]
        programs = [l.name for l in layers if l.program]
        # The build's include directories come from the same order
        # (cmake/CoremlzLayers.cmake): the table and the build must agree.
        with open(os.path.join(SOURCE_DIR, "cmake", "CoremlzLayers.cmake")) as f:
            cmake = f.read()
        def cmake_list(name):
            match = re.search(r"^set\(" + name + r" ([^)]*)\)", cmake, re.M)
            self.assertIsNotNone(match, name)
            return match.group(1).split()
        self.assertEqual(libraries, cmake_list("COREMLZ_LAYERS"))
        self.assertEqual(programs, cmake_list("COREMLZ_TOP_LAYERS"))
        self.assertEqual(libraries[:5], ["common", "format", "compress", "engine", "execute"])
        self.assertEqual(programs, ["service", "workers", "clients"])
        self.assertEqual(by_prefix["coreml"].name, "format")
        self.assertEqual(by_prefix["coremlz"].name, "api")


class Repository(unittest.TestCase):
    def test_production_sources_follow_the_layers(self):
        exceptions = os.path.join(HERE, "allowed_exceptions.txt")
        code, output = run_checker(SOURCE_DIR, exceptions)
        self.assertEqual(code, 0, output)
        self.assertEqual(output, "")


class SyntheticTree(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.TemporaryDirectory()
        self.root = self.dir.name

    def tearDown(self):
        self.dir.cleanup()

    def test_allowed_includes_pass(self):
        write_tree(self.root, {
            "format/package.cc": includes("format/package.h", "common/file_util.h", "coreml/model.pb.h")
                                 + "#include <vector>\n",
            "engine/config.cc": includes("engine/config.h", "compress/prune.h", "format/fp16.h",
                                         "absl/status/status.h", "yaml-cpp/yaml.h"),
            "api/convert.cc": includes("api/convert.h", "coremlz/v1/compressor.grpc.pb.h",
                                       "execute/compare.h", "grpcpp/grpcpp.h"),
            "service/server.cc": includes("service/metrics.h", "api/transfer.h", "prometheus/registry.h"),
            "workers/runner/host_backend.cc": includes("workers/runner/host_backend.h", "execute/npy.h"),
            "clients/render.cc": includes("clients/render.h", "api/convert.h", "google/protobuf/message.h"),
            "tests/engine/config_test.cc": includes("clients/render.h"),  # tests may include anything
        })
        code, output = run_checker(self.root)
        self.assertEqual(code, 0, output)
        self.assertEqual(output, "")

    def test_wrong_way_sibling_and_proto_includes_are_reported(self):
        write_tree(self.root, {
            "engine/config.cc": includes("engine/config.h", "api/convert.h"),
            "service/server.cc": includes("service/server.h", "clients/render.h"),
            "clients/commands.cc": includes("workers/runner/host_backend.h"),
            "format/package.h": includes("coremlz/v1/config.pb.h"),
            "common/utf8.cc": includes("tests/testing/test_env.h"),
            "tests/testing/test_env.h": "",
        })
        code, output = run_checker(self.root)
        self.assertEqual(code, 1, output)
        self.assertEqual(sorted(output.splitlines()), sorted([
            "engine/config.cc:2: engine includes api/convert.h (layer api)",
            "service/server.cc:2: service includes clients/render.h (layer clients)",
            "clients/commands.cc:1: clients includes workers/runner/host_backend.h (layer workers)",
            "format/package.h:1: format includes coremlz/v1/config.pb.h (layer api)",
            "common/utf8.cc:1: common includes tests/testing/test_env.h (layer none)",
        ]))

    def test_listed_exception_is_tolerated_and_stale_one_fails(self):
        write_tree(self.root, {
            "service/server.cc": includes("clients/render.h"),
        })
        exceptions = os.path.join(self.root, "exceptions.txt")
        with open(exceptions, "w") as f:
            f.write("# comment\nservice/server.cc clients/render.h\n")
        self.assertEqual(run_checker(self.root, exceptions), (0, ""))

        with open(exceptions, "a") as f:
            f.write("workers/worker_main.cc service/server.h\n")
        code, output = run_checker(self.root, exceptions)
        self.assertEqual(code, 1, output)
        self.assertIn("stale exception: workers/worker_main.cc no longer includes service/server.h", output)


if __name__ == "__main__":
    SOURCE_DIR = os.path.abspath(sys.argv.pop(1))
    unittest.main(verbosity=2)

# coremlz container image: coremlzd (the default entrypoint), coremlz-worker,
# coremlz-runner (host backend; the macOS backend runs on Macs, not here) and
# the coremlz CLI, all from Debian 12 packages.
#
#   docker build -t coremlz:0.1.0 .
#   docker run --rm -p 50051:50051 -p 9464:9464 coremlz:0.1.0                 # the front
#   docker run --rm --entrypoint coremlz-worker coremlz:0.1.0 \
#       --address 0.0.0.0:50052 --metrics-address 0.0.0.0:9464                 # a worker
#   docker run --rm --entrypoint coremlz-runner coremlz:0.1.0 \
#       --backend host --address 0.0.0.0:50061                                  # a host runner
#
# See deploy/README.md. tests/deploy/dockerfile_test checks this file against
# the build (scripts, binaries, runtime libraries).

# ---- build: the same scripts a developer and CI run -------------------------
FROM debian:12 AS build
WORKDIR /src
# Dependencies first, so the (slow) package layer is cached across source edits.
COPY scripts/install-deps.sh scripts/install-deps.sh
RUN COREMLZ_WITH_TEST_TOOLS=0 scripts/install-deps.sh \
 && rm -rf /var/lib/apt/lists/*
COPY . .
ARG JOBS=2
RUN JOBS="${JOBS}" BUILD_DIR=/src/build scripts/build.sh \
      -DCOREMLZ_BUILD_TESTS=OFF -DCOREMLZ_BUILD_BENCH=OFF
# The build type keeps -O2 code and debug info; ship the same code without the
# debug sections.
RUN mkdir -p /out \
 && for b in service/coremlzd workers/coremlz-worker workers/coremlz-runner clients/coremlz; do \
      strip --strip-debug -o "/out/$(basename "$b")" "/src/build/$b"; \
    done

# ---- runtime: only the shared libraries the binaries load -------------------
FROM debian:12-slim
COPY scripts/runtime-packages.txt /tmp/runtime-packages.txt
RUN apt-get update -q \
 && sed -e 's/#.*//' -e '/^[[:space:]]*$/d' /tmp/runtime-packages.txt \
      | xargs env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
 && rm -rf /var/lib/apt/lists/* /tmp/runtime-packages.txt \
 && groupadd --system --gid 10001 coremlz \
 && useradd --system --uid 10001 --gid 10001 --home-dir /var/lib/coremlz --create-home \
      --shell /usr/sbin/nologin coremlz

COPY --from=build /out/coremlzd /out/coremlz-worker /out/coremlz-runner /out/coremlz /usr/local/bin/

USER 10001:10001
WORKDIR /var/lib/coremlz
# Job directories go to $TMPDIR (or --work-dir); in Kubernetes an emptyDir.
ENV TMPDIR=/tmp

# 50051: gRPC (coremlz.v1.Compressor, grpc.health.v1, reflection); 9464: /metrics.
EXPOSE 50051 9464

# Plaintext health check of the front. For a worker or runner started with
# --entrypoint, override it (docker run --health-cmd 'coremlz health --server
# 127.0.0.1:50052') or disable it (--no-healthcheck); Kubernetes ignores it and
# uses the manifests' gRPC probes.
HEALTHCHECK --interval=15s --timeout=5s --start-period=10s --retries=3 \
  CMD ["/usr/local/bin/coremlz", "health", "--server", "127.0.0.1:50051"]

# coremlzd drains calls on SIGTERM for --grace-seconds (default 30).
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/coremlzd", "--address", "0.0.0.0:50051", "--metrics-address", "0.0.0.0:9464"]

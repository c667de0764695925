# syntax=docker/dockerfile:1
# Cachalot container image.
#   docker build -t cachalot .
#   docker run -p 8080:8080 -v ./cachalot.yaml:/etc/cachalot/cachalot.yaml:ro cachalot
# The build stage runs scripts/container-build.sh, which can be run without
# Docker to reproduce it. The runtime stage has only the shared libraries.

FROM debian:bookworm-slim AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends \
      ca-certificates cmake g++ ninja-build pkg-config python3 \
      catch2 libasio-dev libre2-dev libspdlog-dev libfmt-dev libssl-dev \
      libsystemd-dev libxxhash-dev libyaml-cpp-dev nlohmann-json3-dev node-llhttp libhiredis-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . /src
RUN CACHALOT_BUILD_DIR=/build bash scripts/container-build.sh /src /out

FROM debian:bookworm-slim AS runtime
# Runtime libraries of /usr/bin/cachalot (libc6, libstdc++6 and libgcc-s1 are
# in the base image). Keep in step with packaging/cpack.cmake's fallback list.
RUN apt-get update \
 && apt-get install -y --no-install-recommends \
      ca-certificates libfmt9 libre2-9 libspdlog1.10 libssl3 libsystemd0 \
      libxxhash0 libyaml-cpp0.7 libhiredis0.14 \
 && rm -rf /var/lib/apt/lists/*
# A fixed numeric UID so that Kubernetes' runAsNonRoot can check it and
# mounted files can be chowned to it in advance. (Not --system: that range
# ends at 999. --no-log-init keeps a high UID from growing /var/log/lastlog.)
RUN groupadd --gid 10001 cachalot \
 && useradd --uid 10001 --gid cachalot --no-create-home --no-log-init \
      --home-dir /nonexistent --shell /usr/sbin/nologin cachalot
COPY --from=build /out/usr/bin/cachalot /usr/bin/cachalot
COPY packaging/container.yaml /etc/cachalot/cachalot.yaml
# Warm restarts: packaging/container.yaml writes the cache snapshot to
# /var/lib/cachalot/cache.snap on stop and loads it on start. A volume, so it
# outlives the container's writable layer; owned by the runtime user (a new
# anonymous or named volume takes this ownership). Mount your own to keep it
# across `docker rm`: -v cachalot-state:/var/lib/cachalot
RUN install -d -m 0750 -o 10001 -g 10001 /var/lib/cachalot
VOLUME ["/var/lib/cachalot"]

USER 10001:10001
EXPOSE 8080
# SIGTERM drains in-flight requests (server.timeouts.drain, 10s by default):
# give `docker stop -t` / terminationGracePeriodSeconds more than that.
STOPSIGNAL SIGTERM
# The image has no curl: bash's /dev/tcp sends one request to the admin
# listener (loopback, see packaging/container.yaml) and checks the status line.
HEALTHCHECK --interval=10s --timeout=3s --start-period=5s --retries=3 \
  CMD ["/bin/bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/9901 && printf 'GET /healthz HTTP/1.1\\r\\nHost: localhost\\r\\nConnection: close\\r\\n\\r\\n' >&3 && IFS= read -r -t 2 status <&3 && [[ $status == 'HTTP/1.'?' 200'* ]]"]
ENTRYPOINT ["/usr/bin/cachalot"]
CMD ["--config", "/etc/cachalot/cachalot.yaml"]

# Component images of dtr: one target per image (docs/components.md is the contract).
#   DOCKER_BUILDKIT=0 docker build --target etcd -t registry/dtr-etcd:<version> .
# scripts/build-images.sh builds them all. The classic builder builds every stage that
# comes before the target, so the stages that need build/dtr (api, jobrunner, dtr) are
# last and most others build without it (the notary images copy it in their last layer).
# Packages come from Debian bookworm only.

ARG DTR_VERSION=dev
# the binary every stage below copies: build/dtr, or a test build's (build-images.sh --test-version)
ARG DTR_BINARY=build/dtr

# ---------------------------------------------------------------------------------------
# base: shared by every image. Users first (fixed uids of the contract), so that the
# packages' maintainer scripts find and reuse them; no daemons started during builds;
# no docs, man pages or translations installed; curl for the health scripts. No setuid or
# setgid program is left (su, mount, passwd, ...): the jobrunner's registry binary is made
# setuid later, on purpose (docs/jobs.md).
FROM debian:bookworm-slim AS base
SHELL ["/bin/bash", "-eux", "-o", "pipefail", "-c"]
ENV DEBIAN_FRONTEND=noninteractive LANG=C.UTF-8
RUN printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d; chmod 0755 /usr/sbin/policy-rc.d; \
    printf '%s\n' 'path-exclude=/usr/share/doc/*' 'path-include=/usr/share/doc/*/copyright' \
      'path-exclude=/usr/share/man/*' 'path-exclude=/usr/share/info/*' \
      'path-exclude=/usr/share/locale/*' 'path-exclude=/usr/share/lintian/*' \
      > /etc/dpkg/dpkg.cfg.d/dtr-slim; \
    printf 'APT::Install-Recommends "false";\nAPT::Install-Suggests "false";\n' > /etc/apt/apt.conf.d/90dtr; \
    for u in etcd:10001:/var/lib/etcd postgres:10002:/var/lib/postgresql \
             notary-server:10003:/nonexistent notary-signer:10004:/nonexistent \
             docker-registry:10005:/var/lib/docker-registry nginx:10006:/nonexistent \
             dtr-api:10007:/nonexistent dtr-jobrunner:10008:/nonexistent; do \
      IFS=: read -r name uid home <<< "$u"; \
      groupadd --gid "$uid" "$name"; \
      useradd --uid "$uid" --gid "$uid" --no-create-home --home-dir "$home" --shell /usr/sbin/nologin "$name"; \
    done; \
    apt-get update; \
    apt-get install -y ca-certificates curl; \
    rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin /var/cache/debconf/*-old /var/log/apt /var/log/dpkg.log; \
    find / -xdev -type f -perm /6000 -exec chmod a-s {} +
COPY docker/common/lib.sh /usr/local/lib/dtr/lib.sh

# ---------------------------------------------------------------------------------------
FROM base AS etcd
RUN apt-get update; \
    apt-get install -y etcd-server etcd-client; \
    rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin /var/log/apt /var/log/dpkg.log; \
    mkdir -p /data/etcd /run/dtr; chown -R etcd:etcd /data /run/dtr; chmod 0700 /data/etcd
COPY docker/etcd/entrypoint.sh /usr/local/bin/dtr-entrypoint
COPY docker/etcd/dtr-health /usr/local/bin/dtr-health
# dtr etcd-guard: the client port in front of etcd (crates/dtr-server/src/etcd_guard.rs)
ARG DTR_BINARY=build/dtr
COPY ${DTR_BINARY} /usr/local/bin/dtr
# etcdctl inside the container talks to the local member with the etcd certificate
ENV ETCDCTL_API=3 ETCDCTL_ENDPOINTS=https://127.0.0.1:2379 ETCDCTL_CACERT=/ca/ca.pem \
    ETCDCTL_CERT=/ca/etcd/cert.pem ETCDCTL_KEY=/ca/etcd/key.pem
USER 10001:10001
EXPOSE 2379 2380
HEALTHCHECK --interval=10s --timeout=3s --retries=3 CMD ["dtr-health"]
ENTRYPOINT ["dtr-entrypoint"]
ARG DTR_VERSION
LABEL org.opencontainers.image.title="dtr-etcd" org.opencontainers.image.version="$DTR_VERSION"

# ---------------------------------------------------------------------------------------
# PostgreSQL 15 + Patroni. No default 15/main cluster (Patroni runs initdb), and no LLVM
# JIT: the image sets jit=off, and dpkg leaves libLLVM/libz3 and the bitcode out (~100 MB).
FROM base AS rethinkdb
RUN mkdir -p /etc/postgresql-common/createcluster.d; \
    echo 'create_main_cluster = false' > /etc/postgresql-common/createcluster.d/00-dtr.conf; \
    printf '%s\n' 'path-exclude=/usr/lib/*/libLLVM-*' 'path-exclude=/usr/lib/llvm-*' \
      'path-exclude=/usr/lib/*/libz3.so*' 'path-exclude=/usr/lib/postgresql/*/lib/bitcode/*' \
      'path-exclude=/usr/lib/postgresql/*/lib/llvmjit*' > /etc/dpkg/dpkg.cfg.d/dtr-nojit; \
    apt-get update; \
    apt-get install -y postgresql-15 patroni python3-etcd; \
    rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin /var/log/apt /var/log/dpkg.log; \
    mkdir -p /var/lib/postgresql/data /run/postgresql /run/dtr; \
    chown postgres:postgres /var/lib/postgresql /var/lib/postgresql/data /run/postgresql /run/dtr; \
    chmod 0700 /var/lib/postgresql/data; chmod 2775 /run/postgresql
COPY docker/rethinkdb/entrypoint.sh /usr/local/bin/dtr-entrypoint
COPY docker/rethinkdb/dtr-health /usr/local/bin/dtr-health
COPY docker/rethinkdb/post-bootstrap.sh /usr/local/lib/dtr/post-bootstrap.sh
COPY docker/rethinkdb/sql/ /usr/local/share/dtr/sql/
ENV PATH=/usr/lib/postgresql/15/bin:$PATH PGHOST=/run/postgresql \
    PATRONICTL_CONFIG_FILE=/run/dtr/patroni.yml
USER 10002:10002
EXPOSE 5432 8008
HEALTHCHECK --interval=10s --timeout=3s --retries=3 CMD ["dtr-health"]
ENTRYPOINT ["dtr-entrypoint"]
ARG DTR_VERSION
LABEL org.opencontainers.image.title="dtr-rethinkdb" org.opencontainers.image.version="$DTR_VERSION"

# ---------------------------------------------------------------------------------------
FROM base AS nginx
RUN apt-get update; \
    apt-get install -y nginx; \
    rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin /var/log/apt /var/log/dpkg.log; \
    rm -rf /etc/nginx/sites-enabled /etc/nginx/sites-available /etc/nginx/conf.d /var/www/html; \
    mkdir -p /run/dtr; chown nginx:nginx /run/dtr
COPY docker/nginx/nginx.conf.template /etc/nginx/dtr.conf.template
COPY docker/nginx/entrypoint.sh /usr/local/bin/dtr-entrypoint
COPY docker/nginx/dtr-health /usr/local/bin/dtr-health
USER 10006:10006
EXPOSE 8080 8443
HEALTHCHECK --interval=10s --timeout=3s --retries=3 CMD ["dtr-health"]
ENTRYPOINT ["dtr-entrypoint"]
ARG DTR_VERSION
LABEL org.opencontainers.image.title="dtr-nginx" org.opencontainers.image.version="$DTR_VERSION"

# ---------------------------------------------------------------------------------------
FROM base AS registry
RUN apt-get update; \
    apt-get install -y docker-registry; \
    rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin /var/log/apt /var/log/dpkg.log; \
    mkdir -p /storage /run/dtr; chown docker-registry:docker-registry /storage /run/dtr
COPY docker/registry/entrypoint.sh /usr/local/bin/dtr-entrypoint
COPY docker/registry/dtr-health /usr/local/bin/dtr-health
# dtr registry: supervises distribution (crates/dtr-server/src/registry.rs)
ARG DTR_BINARY=build/dtr
COPY ${DTR_BINARY} /usr/local/bin/dtr
USER 10005:10005
EXPOSE 5000
HEALTHCHECK --interval=10s --timeout=3s --retries=3 CMD ["dtr-health"]
ENTRYPOINT ["dtr-entrypoint"]
ARG DTR_VERSION
LABEL org.opencontainers.image.title="dtr-registry" org.opencontainers.image.version="$DTR_VERSION"

# ---------------------------------------------------------------------------------------
# notary 0.7 ships client, escrow, server and signer in one package: keep server + signer.
FROM base AS notary
RUN printf '%s\n' 'path-exclude=/usr/bin/notary' 'path-exclude=/usr/bin/escrow' > /etc/dpkg/dpkg.cfg.d/dtr-notary; \
    apt-get update; \
    apt-get install -y notary; \
    rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin /var/log/apt /var/log/dpkg.log; \
    mkdir -p /run/dtr

FROM notary AS notary-server
RUN chown notary-server:notary-server /run/dtr
COPY docker/notary-server/entrypoint.sh /usr/local/bin/dtr-entrypoint
# dtr db-proxy: notary reaches the database primary through it (crates/dtr-server/src/dbproxy.rs)
ARG DTR_BINARY=build/dtr
COPY ${DTR_BINARY} /usr/local/bin/dtr
COPY docker/notary-server/dtr-health /usr/local/bin/dtr-health
USER 10003:10003
EXPOSE 4443
HEALTHCHECK --interval=10s --timeout=3s --retries=3 CMD ["dtr-health"]
ENTRYPOINT ["dtr-entrypoint"]
ARG DTR_VERSION
LABEL org.opencontainers.image.title="dtr-notary-server" org.opencontainers.image.version="$DTR_VERSION"

FROM notary AS notary-signer
RUN chown notary-signer:notary-signer /run/dtr
COPY docker/notary-signer/entrypoint.sh /usr/local/bin/dtr-entrypoint
# dtr db-proxy: notary reaches the database primary through it (crates/dtr-server/src/dbproxy.rs)
ARG DTR_BINARY=build/dtr
COPY ${DTR_BINARY} /usr/local/bin/dtr
COPY docker/notary-signer/dtr-health /usr/local/bin/dtr-health
USER 10004:10004
EXPOSE 7899
HEALTHCHECK --interval=10s --timeout=3s --retries=3 CMD ["dtr-health"]
ENTRYPOINT ["dtr-entrypoint"]
ARG DTR_VERSION
LABEL org.opencontainers.image.title="dtr-notary-signer" org.opencontainers.image.version="$DTR_VERSION"

# ---------------------------------------------------------------------------------------
# This project's binary (scripts/build-images.sh copies it to build/dtr). Everything
# below needs it; above, etcd (its guard), the registry (its supervisor) and the notary
# images (their database proxy) do too, in their last layer so that the package layers stay cached.
FROM base AS dtr-binary
ARG DTR_BINARY=build/dtr
COPY ${DTR_BINARY} /usr/local/bin/dtr

FROM dtr-binary AS api
COPY docker/api/dtr-health /usr/local/bin/dtr-health
USER 10007:10007
EXPOSE 9443
HEALTHCHECK --interval=10s --timeout=3s --retries=3 CMD ["dtr-health"]
ENTRYPOINT ["dtr", "api"]
ARG DTR_VERSION
LABEL org.opencontainers.image.title="dtr-api" org.opencontainers.image.version="$DTR_VERSION"

# The jobrunner runs distribution's garbage collector (/usr/bin/docker-registry, the same
# Debian package as the registry image) on the registry storage. distribution creates blob
# directories 0755 whatever the umask, so only their owner, the registry's uid 10005, may
# delete blobs: the binary here is set-user-id to that (non-root) user and executable only by
# group 10005, which the jobrunner (uid 10008, gid 10005, as the plan sets) is in. See
# docs/jobs.md. /storage is owned as in the registry image, because Docker copies a mount
# point's owner into an empty volume. The stage starts from base, not dtr-binary, so that
# the package layer stays cached when only the binary changes.
FROM base AS jobrunner
RUN apt-get update; \
    apt-get install -y docker-registry; \
    rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin /var/log/apt /var/log/dpkg.log; \
    chown docker-registry:docker-registry /usr/bin/docker-registry; \
    chmod 4750 /usr/bin/docker-registry; \
    mkdir -p /storage; chown docker-registry:docker-registry /storage
ARG DTR_BINARY=build/dtr
COPY ${DTR_BINARY} /usr/local/bin/dtr
COPY docker/jobrunner/dtr-health /usr/local/bin/dtr-health
USER 10008:10005
HEALTHCHECK --interval=10s --timeout=3s --retries=3 CMD ["dtr-health"]
ENTRYPOINT ["dtr", "jobrunner"]
ARG DTR_VERSION
LABEL org.opencontainers.image.title="dtr-jobrunner" org.opencontainers.image.version="$DTR_VERSION"

# The bootstrapper (and the short-lived dtr-phase2 helper): runs as root. Last stage, so a
# plain `docker build .` makes it.
FROM dtr-binary AS dtr
ENTRYPOINT ["dtr"]
ARG DTR_VERSION
LABEL org.opencontainers.image.title="dtr" org.opencontainers.image.version="$DTR_VERSION"

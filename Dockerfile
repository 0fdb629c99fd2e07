# syntax=docker/dockerfile:1
# One image for every CLI mode: `cache-io webhook | cache | certs | prepull | ...`.
# Multi-arch: `docker buildx build --platform linux/amd64,linux/arm64 .` builds each
# stage natively per platform, so the static no-op matches the node it runs on.
# The base images are build arguments so a build without a registry can substitute
# locally built ones (test/nodes/images/build-project.sh); the release uses these.
ARG BUILD_IMAGE=node:24-bookworm-slim
ARG RUNTIME_IMAGE=gcr.io/distroless/nodejs24-debian12:nonroot

# --- build: compile TypeScript and the static no-op, then keep production deps only
FROM ${BUILD_IMAGE} AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends gcc libc6-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src

# The pre-pull DaemonSet runs this in images that have no shell or libc.
COPY deploy/noop/noop.c deploy/noop/noop.c
RUN gcc -static -Os -s -o /noop deploy/noop/noop.c && /noop

COPY package.json package-lock.json ./
# --ignore-scripts: `prepare` would build before the sources are here.
RUN npm ci --ignore-scripts --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
RUN npm run build \
 && npm ci --omit=dev --ignore-scripts --no-audit --no-fund \
 && npm cache clean --force

# --- runtime: distroless Node.js (no shell, no package manager), uid 65532
FROM ${RUNTIME_IMAGE}
WORKDIR /app
ENV NODE_ENV=production
COPY --from=build /src/package.json ./package.json
COPY --from=build /src/node_modules ./node_modules
COPY --from=build /src/dist ./dist
COPY --from=build /noop ./bin/noop
# Writes nothing outside mounted volumes: runs with readOnlyRootFilesystem.
USER 65532:65532
ENTRYPOINT ["/nodejs/bin/node", "/app/dist/cli/main.js"]
CMD ["--help"]

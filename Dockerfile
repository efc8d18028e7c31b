# syntax=docker/dockerfile:1
# One image for every component: `adapter`, `operator`, `certs` are commands of dist/cli.js.
# Build and runtime use Node 24, the major the test suite runs on (package.json pins node@24).

FROM node:24-bookworm-slim AS build
WORKDIR /src
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY scripts ./scripts
COPY src ./src
RUN npm run build

FROM node:24-bookworm-slim AS prod-deps
WORKDIR /src
COPY package.json package-lock.json ./
# Production dependencies only; the npm `node` binary package is a dev dependency and stays out.
RUN npm ci --omit=dev --no-audit --no-fund

FROM gcr.io/distroless/nodejs24-debian12:nonroot
WORKDIR /app
COPY --from=prod-deps /src/node_modules ./node_modules
COPY --from=build /src/dist ./dist
COPY package.json ./
# distroless "nonroot": uid/gid 65532. Nothing is written outside mounted volumes, so the root
# filesystem can be read-only.
USER 65532:65532
ENV NODE_ENV=production
# V8 grows the young generation to 64 MB semi-spaces under load (128 MB of RSS that stays); 8 MB
# keeps the adapter and operator about 100 MB smaller under load, and scavenges shorter (under
# 10 ms instead of up to 18), for a few percent more CPU. The bench runs the servers with this
# line (bench/servers.ts reads it); set NODE_OPTIONS in the Deployment to change it.
ENV NODE_OPTIONS="--max-semi-space-size=8"
# glibc gives every thread that allocates (V8's GC and compiler threads, libuv's pool) a malloc
# arena of its own, and freed pages stay spread over them: two arenas keep about 7 MB of that out
# of the operator's RSS at 1,000 ScaledObjects (bench/run.ts and bench/scale.ts run with it).
ENV MALLOC_ARENA_MAX=2
ENTRYPOINT ["/nodejs/bin/node", "dist/cli.js"]
CMD ["adapter"]

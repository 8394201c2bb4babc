# pgtenant container image. Build: docker build -t pgtenant .
# Run:   docker run --rm -p 6432:6432 -p 9187:9187 -v $PWD/pgtenant.yaml:/etc/pgtenant/pgtenant.yaml:ro pgtenant
#   or, with the default config (deploy/docker/pgtenant.yaml: metrics on 0.0.0.0:9187, the rest from the environment):
#        docker run --rm -p 6432:6432 -p 9187:9187 -e DATABASE_URL=postgres://app:pw@db:5432/saas -e APP_PASSWORD=… -e ADMIN_PASSWORD=… pgtenant

# ---- build: dev dependencies, TypeScript → dist/
FROM node:20-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json tsconfig.json ./
COPY server ./server
COPY parser ./parser
COPY routing ./routing
COPY bench ./bench
COPY test ./test
# `npm ci` runs the `prepare` script, which compiles to dist/.
RUN npm ci --no-audit --no-fund

# ---- runtime: production dependencies only, non-root
FROM node:20-bookworm-slim
# tini as PID 1: forwards SIGTERM (drain) and SIGHUP (reload) to node and reaps zombies,
# so the image behaves the same with or without `docker run --init`.
RUN apt-get update \
 && apt-get install -y --no-install-recommends tini \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /app
ENV NODE_ENV=production
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --ignore-scripts --no-audit --no-fund && npm cache clean --force
COPY --from=build /app/dist ./dist
# The default config enables `metrics: 0.0.0.0:9187`, which the HEALTHCHECK needs; a config
# mounted over it must keep metrics on (the HEALTHCHECK fails without them).
COPY deploy/docker/pgtenant.yaml /etc/pgtenant/pgtenant.yaml
USER node
# 6432: PostgreSQL clients; 9187: /metrics, /healthz, /readyz.
EXPOSE 6432 9187
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:9187/healthz').then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]
ENTRYPOINT ["/usr/bin/tini", "--", "node", "dist/server/cli.js"]
CMD ["--config", "/etc/pgtenant/pgtenant.yaml"]

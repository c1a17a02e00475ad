# syntax=docker/dockerfile:1
# Build stage: install everything, compile TypeScript to dist/ and bundle the console (dist/console).
FROM node:20-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY rules ./rules
COPY server ./server
COPY bench ./bench
COPY console ./console
RUN npm run build

# Runtime stage: production dependencies and the compiled code only, as a non-root user.
FROM node:20-bookworm-slim
ENV NODE_ENV=production
# docker stop sends SIGTERM, then SIGKILL after 10 s (--stop-timeout): the drain (DRAIN_DELAY_MS,
# 0 by default, then DRAIN_TIMEOUT_MS for requests in flight) must end before that, with time to
# close the stores. Raising either needs a longer --stop-timeout (README, Docker).
ENV DRAIN_TIMEOUT_MS=8000
WORKDIR /app
COPY package.json package-lock.json ./
# uWebSockets.js ships a native binary for every platform, architecture and Node ABI (about
# 180 MB); its loader requires uws_<platform>_<arch>_<ABI>.node beside it. Only this image's one
# is kept, in the same layer as the install so that no layer holds the others.
RUN npm ci --omit=dev --no-audit --no-fund && npm cache clean --force \
  && uws=node_modules/@based/uws \
  && keep="uws_$(node -p 'process.platform + "_" + process.arch + "_" + process.versions.modules').node" \
  && test -f "$uws/$keep" \
  && find "$uws" -name '*.node' ! -path "$uws/$keep" -delete
COPY --from=build /app/dist ./dist
COPY rules/examples ./rules/examples
COPY rules/ruleset.schema.json ./rules/ruleset.schema.json
USER node
EXPOSE 8080 8081
# bash's /dev/tcp instead of a Node process every 10 s (tens of MB and a fraction of a CPU second
# each): healthy when /healthz on the control plane answers 200.
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \
  CMD ["bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/${ADMIN_PORT:-8081} && printf 'GET /healthz HTTP/1.1\\r\\nHost: localhost\\r\\nConnection: close\\r\\n\\r\\n' >&3 && read -r -t 2 _ status _ <&3 && [ \"${status%$'\\r'}\" = 200 ]"]
CMD ["node", "dist/server/main.js"]

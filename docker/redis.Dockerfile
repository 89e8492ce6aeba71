# Redis from Debian 12 (no registry is needed: FROM the local debian:12).
FROM debian:12 AS rootfs
RUN apt-get update -qq \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        redis-server \
 && apt-get clean \
 && rm -rf /var/lib/apt/lists/* /var/cache/apt/* /usr/share/doc/* \
        /usr/share/man/* /usr/share/locale/* \
 && mkdir -p /data && chown redis:redis /data

FROM scratch
COPY --from=rootfs / /
VOLUME ["/data"]
WORKDIR /data
USER redis
EXPOSE 6379
CMD ["redis-server", "--bind", "0.0.0.0", "--protected-mode", "no", \
     "--dir", "/data", "--appendonly", "yes", "--appendfsync", "always"]

# PostgreSQL 15 from Debian 12, for the audit archive (docs/archive.md).
# First start: a cluster on the volume, the archive's database owned by
# credit_admin, and the logins of the compose stack (docker/archive-init).
FROM debian:12 AS rootfs
RUN apt-get update -qq \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        postgresql-15 \
 && apt-get clean \
 && rm -rf /var/lib/apt/lists/* /var/cache/apt/* /usr/share/doc/* \
        /usr/share/man/* /usr/share/locale/* \
 && mkdir -p /var/lib/postgresql/data /run/postgresql \
 && chown -R postgres:postgres /var/lib/postgresql /run/postgresql
COPY docker/archive-init /usr/local/bin/archive-init

FROM scratch
COPY --from=rootfs / /
VOLUME ["/var/lib/postgresql/data"]
USER postgres
EXPOSE 5432
ENTRYPOINT ["/usr/local/bin/archive-init"]

/*
 * The archive's schema (contract §7.2, docs/archive.md "Schema"): versioned
 * migrations applied in order by `credit-audit ship --init`, printed by
 * `ship --print-schema` (the DDL docs/archive.md shows, held against this
 * output by a test).
 *
 * The entry columns are the audit schema's (ca_audit_sql_columns(),
 * lib/audit/auditschema.h): a field added there is a column here.  A new
 * column for an archive that exists is a new migration (ALTER TABLE ...
 * ADD COLUMN), never an edit of one that ran.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "audit_pg.h"

#define S ARCHIVE_SCHEMA

/* Runs before any migration, every time: the schema and the table that
 * says which migrations ran (idempotent). */
static const char bootstrap[] =
    "CREATE SCHEMA IF NOT EXISTS " S ";\n"
    "CREATE TABLE IF NOT EXISTS " S ".schema_version (\n"
    "    version     integer PRIMARY KEY,\n"
    "    applied_at  timestamptz NOT NULL DEFAULT now(),\n"
    "    description text NOT NULL\n"
    ");\n";

static const char roles[] =
    "DO $$\n"
    "DECLARE r text;\n"
    "BEGIN\n"
    "    FOREACH r IN ARRAY ARRAY['" ROLE_SHIPPER "', '" ROLE_READER "',\n"
    "                             '" ROLE_ACKNOWLEDGER "'] LOOP\n"
    "        IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = r) THEN\n"
    "            EXECUTE format('CREATE ROLE %I NOLOGIN', r);\n"
    "        END IF;\n"
    "    END LOOP;\n"
    "END $$;\n"
    "REVOKE ALL ON SCHEMA " S " FROM PUBLIC;\n"
    "GRANT USAGE ON SCHEMA " S " TO " ROLE_SHIPPER ", " ROLE_READER ",\n"
    "    " ROLE_ACKNOWLEDGER ";\n"
    "GRANT SELECT ON " S ".schema_version TO " ROLE_SHIPPER ", "
    ROLE_READER ",\n"
    "    " ROLE_ACKNOWLEDGER ";\n";

/* The entries, before and after the audit schema's columns. */
static const char entries_head[] =
    "-- Every stream entry the shipper took, once, verbatim: `raw` holds\n"
    "-- its field/value pairs exactly as Redis held them; the typed\n"
    "-- columns (NULL where the entry lacks the field, or its value does\n"
    "-- not fit the column) are for queries.\n"
    "CREATE TABLE " S ".entries (\n"
    "    ord         bigint      NOT NULL,  -- archive order: 0, 1, 2, ...\n"
    "    entry_time  timestamptz NOT NULL,  -- ts; else the stream id's time\n"
    "    stream      text        COLLATE \"C\" NOT NULL,\n"
    "    stream_id   text        COLLATE \"C\" NOT NULL,\n"
    "    copy_of     bigint,                -- ord of the entry that holds\n"
    "                                       -- this (gw, chain, seq)\n";

static const char entries_tail[] =
    ",\n"
    "    raw         bytea       COMPRESSION lz4 NOT NULL,\n"
    "    PRIMARY KEY (ord, entry_time)\n"
    ") PARTITION BY RANGE (entry_time);\n"
    "CREATE UNIQUE INDEX entries_stream_id\n"
    "    ON " S ".entries (stream, stream_id, entry_time);\n"
    "CREATE UNIQUE INDEX entries_chain_seq\n"
    "    ON " S ".entries (chain, seq, gw, entry_time) WHERE copy_of IS NULL;\n"
    "-- The regulator's questions name a value (col = $1, IN): the\n"
    "-- entries without one (outcomes have no enterprise, checkpoints no\n"
    "-- rid) cost no index insertion.\n"
    "CREATE INDEX entries_enterprise\n"
    "    ON " S ".entries (enterprise, entry_time) INCLUDE (bank, event, "
    "decision)\n"
    "    WHERE enterprise IS NOT NULL;\n"
    "CREATE INDEX entries_bank ON " S ".entries (bank, entry_time)\n"
    "    WHERE bank IS NOT NULL;\n"
    "CREATE INDEX entries_consent ON " S ".entries (consent, entry_time)\n"
    "    WHERE consent IS NOT NULL;\n"
    "CREATE INDEX entries_rid ON " S ".entries (rid, entry_time)\n"
    "    WHERE rid IS NOT NULL;\n"
    "CREATE INDEX entries_reason ON " S ".entries (reason, entry_time)\n"
    "    WHERE reason IS NOT NULL;\n"
    "\n"
    "-- A break found while shipping; the chain stays in Redis from its\n"
    "-- entry on until someone acknowledges it.\n"
    "CREATE TABLE " S ".findings (\n"
    "    id                bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,\n"
    "    found_at          timestamptz NOT NULL DEFAULT now(),\n"
    "    stream            text   NOT NULL,\n"
    "    stream_id         text   NOT NULL,  -- the entry concerned\n"
    "    ord               bigint NOT NULL,  -- ... in the archive\n"
    "    chain             text   NOT NULL,  -- held in Redis ('' none)\n"
    "    seq               bigint,\n"
    "    kind              text   NOT NULL,  -- verify's kinds\n"
    "    detail            text   NOT NULL,\n"
    "    shipper           text   NOT NULL,\n"
    "    acknowledged_at   timestamptz,      -- set by the database\n"
    "    acknowledged_by   text,\n"
    "    acknowledged_role text,             -- set by the database\n"
    "    note              text\n"
    ");\n"
    "CREATE INDEX findings_open ON " S ".findings (stream)\n"
    "    WHERE acknowledged_at IS NULL;\n"
    "\n"
    "-- The shipper's state: what is archived, per stream and per chain.\n"
    "CREATE TABLE " S ".log (\n"
    "    one         boolean PRIMARY KEY DEFAULT true CHECK (one),\n"
    "    next_ord    bigint  NOT NULL\n"
    ");\n"
    "INSERT INTO " S ".log VALUES (true, 0);\n"
    "CREATE TABLE " S ".streams (\n"
    "    stream      text PRIMARY KEY,\n"
    "    last_id     text   NOT NULL,  -- every entry up to it is archived\n"
    "    entries     bigint NOT NULL,\n"
    "    updated_at  timestamptz NOT NULL,\n"
    "    shipper     text   NOT NULL\n"
    ");\n"
    "CREATE TABLE " S ".chains (\n"
    "    stream      text   NOT NULL,\n"
    "    chain       text   NOT NULL,\n"
    "    last_seq    bigint NOT NULL,\n"
    "    last_hash   bytea  NOT NULL,\n"
    "    last_ord    bigint NOT NULL,\n"
    "    signed_seq  bigint NOT NULL,\n"
    "    key_id      bytea,            -- SHA-256 of the key's DER\n"
    "    entries     bigint NOT NULL,\n"
    "    updated_at  timestamptz NOT NULL,\n"
    "    PRIMARY KEY (stream, chain)\n"
    ");\n"
    "\n"
    "-- Append-only, whoever asks (the owner too): no UPDATE, DELETE or\n"
    "-- TRUNCATE of an entry; of a finding, only its acknowledgement.\n"
    "CREATE FUNCTION " S ".refuse_change() RETURNS trigger\n"
    "LANGUAGE plpgsql AS $$\n"
    "BEGIN\n"
    "    RAISE EXCEPTION '" S ".% is append-only: % refused',\n"
    "        TG_TABLE_NAME, TG_OP USING ERRCODE = 'insufficient_privilege';\n"
    "END $$;\n"
    "CREATE TRIGGER append_only BEFORE UPDATE OR DELETE ON " S ".entries\n"
    "    FOR EACH ROW EXECUTE FUNCTION " S ".refuse_change();\n"
    "CREATE TRIGGER no_truncate BEFORE TRUNCATE ON " S ".entries\n"
    "    FOR EACH STATEMENT EXECUTE FUNCTION " S ".refuse_change();\n"
    "CREATE FUNCTION " S ".acknowledge_only() RETURNS trigger\n"
    "LANGUAGE plpgsql AS $$\n"
    "BEGIN\n"
    "    IF TG_OP <> 'UPDATE' THEN\n"
    "        RAISE EXCEPTION '" S ".findings is append-only: % refused',\n"
    "            TG_OP USING ERRCODE = 'insufficient_privilege';\n"
    "    END IF;\n"
    "    IF OLD.acknowledged_at IS NOT NULL THEN\n"
    "        RAISE EXCEPTION 'finding % was acknowledged at % by %', OLD.id,\n"
    "            OLD.acknowledged_at, OLD.acknowledged_by\n"
    "            USING ERRCODE = 'insufficient_privilege';\n"
    "    END IF;\n"
    "    IF (NEW.id, NEW.found_at, NEW.stream, NEW.stream_id, NEW.ord,\n"
    "        NEW.chain, NEW.seq, NEW.kind, NEW.detail, NEW.shipper)\n"
    "       IS DISTINCT FROM\n"
    "       (OLD.id, OLD.found_at, OLD.stream, OLD.stream_id, OLD.ord,\n"
    "        OLD.chain, OLD.seq, OLD.kind, OLD.detail, OLD.shipper) THEN\n"
    "        RAISE EXCEPTION 'only a finding''s acknowledgement may change'\n"
    "            USING ERRCODE = 'insufficient_privilege';\n"
    "    END IF;\n"
    "    IF coalesce(NEW.acknowledged_by, '') = '' THEN\n"
    "        RAISE EXCEPTION 'an acknowledgement says who gives it';\n"
    "    END IF;\n"
    "    NEW.acknowledged_at := now();\n"
    "    NEW.acknowledged_role := session_user;\n"
    "    RETURN NEW;\n"
    "END $$;\n"
    "CREATE TRIGGER acknowledge_only BEFORE UPDATE OR DELETE ON " S
    ".findings\n"
    "    FOR EACH ROW EXECUTE FUNCTION " S ".acknowledge_only();\n"
    "CREATE TRIGGER no_truncate BEFORE TRUNCATE ON " S ".findings\n"
    "    FOR EACH STATEMENT EXECUTE FUNCTION " S ".refuse_change();\n"
    "\n"
    "-- A month's partition (UTC), with its own TRUNCATE guard (a statement\n"
    "-- trigger on the parent does not cover TRUNCATE of a partition):\n"
    "-- the shipper may create one, nothing else.\n"
    "CREATE FUNCTION " S ".ensure_month(t timestamptz) RETURNS text\n"
    "LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, "
    "pg_temp AS $$\n"
    "DECLARE\n"
    "    m0 timestamp := date_trunc('month', t AT TIME ZONE 'UTC');\n"
    "    part text := 'entries_' || to_char(m0, 'YYYY_MM');\n"
    "BEGIN\n"
    "    PERFORM pg_advisory_xact_lock(hashtext('" S ".ensure_month'));\n"
    "    IF to_regclass('" S ".' || quote_ident(part)) IS NULL THEN\n"
    "        EXECUTE format('CREATE TABLE " S ".%I PARTITION OF " S
    ".entries '\n"
    "                       'FOR VALUES FROM (%L) TO (%L)', part,\n"
    "                       m0 AT TIME ZONE 'UTC',\n"
    "                       (m0 + interval '1 month') AT TIME ZONE 'UTC');\n"
    "        EXECUTE format('CREATE TRIGGER no_truncate BEFORE TRUNCATE ON "
    "'\n"
    "                       '" S ".%I FOR EACH STATEMENT EXECUTE FUNCTION '\n"
    "                       '" S ".refuse_change()', part);\n"
    "        EXECUTE format('REVOKE ALL ON " S ".%I FROM PUBLIC', part);\n"
    "    END IF;\n"
    "    RETURN part;\n"
    "END $$;\n"
    "REVOKE ALL ON FUNCTION " S ".ensure_month(timestamptz) FROM PUBLIC;\n"
    "GRANT EXECUTE ON FUNCTION " S ".ensure_month(timestamptz) TO "
    ROLE_SHIPPER ";\n"
    "SELECT " S ".ensure_month(now());\n"
    "SELECT " S ".ensure_month(now() + interval '1 month');\n"
    "\n"
    "GRANT SELECT, INSERT ON " S ".entries, " S ".findings TO "
    ROLE_SHIPPER ";\n"
    "GRANT SELECT, INSERT, UPDATE ON " S ".log, " S ".streams, " S ".chains\n"
    "    TO " ROLE_SHIPPER ";\n"
    "GRANT SELECT ON " S ".entries, " S ".findings, " S ".log, " S
    ".streams,\n"
    "    " S ".chains TO " ROLE_READER ";\n"
    "GRANT SELECT ON " S ".findings TO " ROLE_ACKNOWLEDGER ";\n"
    "GRANT UPDATE (acknowledged_by, note) ON " S ".findings TO "
    ROLE_ACKNOWLEDGER ";\n";

/* Migration 2: the Merkle tree log over the entries in archive order and
 * its signed checkpoints (contract §7.3, docs/transparency.md "Storage"). */
static const char merkle_log[] =
    "-- Every complete subtree of the Merkle tree log (RFC 9162 §2.1) over\n"
    "-- the entries in archive order: the node (level, i) covers the\n"
    "-- leaves [i * 2^level, (i + 1) * 2^level); a row holds the hashes of\n"
    "-- nodes first, first + 1, ... of one level (32 bytes each, at most\n"
    "-- 64, never across a multiple of 64).  Written by the shipper in the\n"
    "-- transaction of the batch whose entries they cover.\n"
    "CREATE TABLE " S ".merkle (\n"
    "    level   smallint NOT NULL CHECK (level BETWEEN 0 AND 63),\n"
    "    first   bigint   NOT NULL CHECK (first >= 0),\n"
    "    hashes  bytea    NOT NULL CHECK (length(hashes) BETWEEN 32 AND "
    "2048\n"
    "                                      AND length(hashes) % 32 = 0),\n"
    "    PRIMARY KEY (level, first)\n"
    ");\n"
    "-- hashes do not compress: kept in the row, not tried and toasted\n"
    "ALTER TABLE " S ".merkle ALTER COLUMN hashes SET STORAGE PLAIN;\n"
    "-- The signed tree heads: C2SP tlog-checkpoint notes, every one kept.\n"
    "CREATE TABLE " S ".checkpoints (\n"
    "    size     bigint      PRIMARY KEY,  -- one head per tree size\n"
    "    root     bytea       NOT NULL,\n"
    "    origin   text        NOT NULL,\n"
    "    note     text        NOT NULL,     -- the signed note, verbatim\n"
    "    made_at  timestamptz NOT NULL DEFAULT now()\n"
    ");\n"
    "CREATE INDEX checkpoints_made_at ON " S ".checkpoints (made_at);\n"
    "CREATE TRIGGER append_only BEFORE UPDATE OR DELETE ON " S ".merkle\n"
    "    FOR EACH ROW EXECUTE FUNCTION " S ".refuse_change();\n"
    "CREATE TRIGGER no_truncate BEFORE TRUNCATE ON " S ".merkle\n"
    "    FOR EACH STATEMENT EXECUTE FUNCTION " S ".refuse_change();\n"
    "CREATE TRIGGER append_only BEFORE UPDATE OR DELETE ON " S
    ".checkpoints\n"
    "    FOR EACH ROW EXECUTE FUNCTION " S ".refuse_change();\n"
    "CREATE TRIGGER no_truncate BEFORE TRUNCATE ON " S ".checkpoints\n"
    "    FOR EACH STATEMENT EXECUTE FUNCTION " S ".refuse_change();\n"
    "GRANT SELECT, INSERT ON " S ".merkle, " S ".checkpoints TO "
    ROLE_SHIPPER ";\n"
    "GRANT SELECT ON " S ".merkle, " S ".checkpoints TO " ROLE_READER ";\n";

typedef struct {
    int         version;
    const char *description;
} migration;

static const migration migrations[] = {
    {1, "entries by month, findings, shipper state, roles, append-only"},
    {2, "the Merkle tree log and its signed checkpoints"},
};

#define NMIGRATIONS (sizeof(migrations) / sizeof(migrations[0]))

int
pgschema_version(void)
{
    return migrations[NMIGRATIONS - 1].version;
}

/* The typed columns ("    name type" joined by ",\n"), each text one
 * COLLATE "C": the archive's text compares byte by byte, the same on
 * every server whatever its locale, and its index insertions need no
 * strcoll() (docs/archive.md "Measured"). */
static void
text_columns_bytewise(sbuf *b, const char *cols)
{
    while (*cols != '\0') {
        size_t len = strcspn(cols, ",");

        sb_put(b, cols, len);
        if (len >= 5 && memcmp(cols + len - 5, " text", 5) == 0) {
            sb_puts(b, " COLLATE \"C\"");
        }
        cols += len;
        if (*cols == ',') {
            sb_put(b, ",", 1);
            cols++;
        }
    }
}

/* The SQL of migration `version`, into b. */
static void
migration_sql(int version, sbuf *b)
{
    size_t  n;
    char   *cols;

    switch (version) {
    case 1:
        sb_puts(b, roles);
        sb_puts(b, "\n");
        sb_puts(b, entries_head);
        n = ca_audit_sql_columns(NULL, 0);
        if ((cols = malloc(n + 1)) == NULL) {
            b->failed = 1;
            return;
        }
        ca_audit_sql_columns(cols, n + 1);
        text_columns_bytewise(b, cols);
        free(cols);
        sb_puts(b, entries_tail);
        break;
    case 2:
        sb_puts(b, merkle_log);
        break;
    }
}

int
pgschema_print(FILE *out)
{
    sbuf b = {0};

    sb_puts(&b, "-- credit-audit archive schema (docs/archive.md): what\n"
            "-- `credit-audit ship --init` runs on an empty database, in "
            "one\n-- transaction.\n");
    sb_puts(&b, bootstrap);
    for (size_t i = 0; i < NMIGRATIONS; i++) {
        sb_printf(&b, "\n-- migration %d: %s\n", migrations[i].version,
                  migrations[i].description);
        migration_sql(migrations[i].version, &b);
        sb_printf(&b, "INSERT INTO " S ".schema_version (version, "
                  "description)\n    VALUES (%d, '%s');\n",
                  migrations[i].version, migrations[i].description);
    }
    if (b.failed) {
        sb_free(&b);
        return -1;
    }
    fputs(b.p, out);
    sb_free(&b);
    return 0;
}

static int
current_version(PGconn *c, int *v)
{
    PGresult *r = pg_query(c, "SELECT coalesce(max(version), 0) FROM " S
                           ".schema_version", 0, NULL);

    if (r == NULL) {
        return -1;
    }
    *v = atoi(PQgetvalue(r, 0, 0));
    PQclear(r);
    return 0;
}

int
pgschema_init(PGconn *c, FILE *out)
{
    int  have, applied = 0;
    sbuf b = {0};

    /* one --init at a time: the second waits, then finds nothing to do */
    if (pg_exec(c, "BEGIN") != 0
        || pg_exec(c, "SELECT pg_advisory_xact_lock(hashtext('" S
                   ".init'))") != 0
        || pg_exec(c, bootstrap) != 0 || current_version(c, &have) != 0)
    {
        goto fail;
    }
    if (have > pgschema_version()) {
        fprintf(stderr, "%s: the archive's schema is at version %d, newer "
                "than this credit-audit's %d: upgrade the tools\n",
                tool_name, have, pgschema_version());
        goto fail;
    }
    for (size_t i = 0; i < NMIGRATIONS; i++) {
        if (migrations[i].version <= have) {
            continue;
        }
        b.len = 0;
        migration_sql(migrations[i].version, &b);
        sb_printf(&b, "INSERT INTO " S ".schema_version (version, "
                  "description) VALUES (%d, '%s');\n",
                  migrations[i].version, migrations[i].description);
        if (b.failed || pg_exec(c, b.p) != 0) {
            goto fail;
        }
        fprintf(out, "migration %d applied: %s\n", migrations[i].version,
                migrations[i].description);
        applied++;
    }
    if (pg_exec(c, "COMMIT") != 0) {
        goto fail;
    }
    sb_free(&b);
    if (applied == 0) {
        fprintf(out, "the archive's schema is at version %d: nothing to "
                "do\n", have);
    } else {
        fprintf(out, "the archive's schema is at version %d\n",
                pgschema_version());
    }
    return 0;

fail:
    sb_free(&b);
    PQclear(PQexec(c, "ROLLBACK"));
    return -1;
}

int
pgschema_check(PGconn *c)
{
    PGresult *r = PQexec(c, "SELECT coalesce(max(version), 0) FROM " S
                         ".schema_version");
    int       v = -1;

    if (r != NULL && PQresultStatus(r) == PGRES_TUPLES_OK) {
        v = atoi(PQgetvalue(r, 0, 0));
    }
    PQclear(r);
    if (v == pgschema_version()) {
        return 0;
    }
    if (v < 0) {
        fprintf(stderr, "%s: archive: no credit-audit schema there, or no "
                "right to read it (%s): run `credit-audit ship --init "
                "--archive CONNINFO` as the database's owner, and grant "
                "this role " ROLE_SHIPPER " or " ROLE_READER "\n",
                tool_name, pg_error(c));
    } else {
        fprintf(stderr, "%s: archive: schema version %d, this credit-audit "
                "needs %d: %s\n", tool_name, v, pgschema_version(),
                v < pgschema_version()
                ? "run `credit-audit ship --init` to migrate it"
                : "upgrade the tools");
    }
    return -1;
}

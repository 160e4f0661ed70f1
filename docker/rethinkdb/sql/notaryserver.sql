-- Schema that notary-server 0.7 expects in PostgreSQL (the state after notary's server
-- migrations 1 and 2; Debian's package ships no migrations). Run by post-bootstrap.sh in
-- database notaryserver as role notaryserver, once, when the cluster is initialised.

-- TUF metadata, one row per (repository, role, version); gorm soft-deletes via deleted_at
CREATE TABLE tuf_files (
    id         serial PRIMARY KEY,
    created_at timestamp NULL DEFAULT NULL,
    updated_at timestamp NULL DEFAULT NULL,
    deleted_at timestamp NULL DEFAULT NULL,
    gun        varchar(255) NOT NULL,
    role       varchar(255) NOT NULL,
    version    integer NOT NULL,
    data       bytea NOT NULL,
    sha256     char(64) DEFAULT NULL,
    UNIQUE (gun, role, version)
);
CREATE INDEX tuf_files_sha256_idx ON tuf_files (sha256);

-- the change feed (/_notary_server/changefeed): one row per published timestamp or deletion
CREATE TABLE change_category (
    category varchar(20) PRIMARY KEY
);
INSERT INTO change_category (category) VALUES ('update'), ('deletion');

CREATE TABLE changefeed (
    id         serial PRIMARY KEY,
    created_at timestamp DEFAULT CURRENT_TIMESTAMP,
    gun        varchar(255) NOT NULL,
    version    integer NOT NULL,
    sha256     char(64) DEFAULT NULL,
    category   varchar(20) NOT NULL DEFAULT 'update' REFERENCES change_category (category)
);
CREATE INDEX idx_changefeed_gun ON changefeed (gun);

-- the migration level, in the layout of notary's migrate tool, for a later upgrade
CREATE TABLE schema_migrations (
    version bigint PRIMARY KEY,
    dirty   boolean NOT NULL
);
INSERT INTO schema_migrations (version, dirty) VALUES (2, false);

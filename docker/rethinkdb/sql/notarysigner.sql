-- Schema that notary-signer 0.7 expects in PostgreSQL (the state after notary's signer
-- migration 1; Debian's package ships no migrations). Run by post-bootstrap.sh in database
-- notarysigner as role notarysigner, once, when the cluster is initialised.

-- private keys, encrypted (JWE) with the passphrase named by passphrase_alias
CREATE TABLE private_keys (
    id               serial PRIMARY KEY,
    created_at       timestamp NULL DEFAULT NULL,
    updated_at       timestamp NULL DEFAULT NULL,
    deleted_at       timestamp NULL DEFAULT NULL,
    key_id           varchar(255) NOT NULL,
    encryption_alg   varchar(255) NOT NULL,
    keywrap_alg      varchar(255) NOT NULL,
    algorithm        varchar(50) NOT NULL,
    passphrase_alias varchar(50) NOT NULL,
    public           bytea NOT NULL,
    private          bytea NOT NULL,
    gun              varchar(255) NOT NULL,
    role             varchar(255) NOT NULL,
    last_used        timestamp NULL DEFAULT NULL,
    CONSTRAINT key_id UNIQUE (key_id),
    CONSTRAINT key_id_algorithm UNIQUE (key_id, algorithm)
);

CREATE TABLE schema_migrations (
    version bigint PRIMARY KEY,
    dirty   boolean NOT NULL
);
INSERT INTO schema_migrations (version, dirty) VALUES (1, false);

-- API tokens for integrations (issue 8). Only the SHA-256 of the secret is stored (the secret is
-- 256 random bits, so a fast hash suffices); `prefix` is its first characters, shown in lists so
-- an admin can tell tokens apart. `scopes` is a space-separated list of permissions::Scope texts.
CREATE TABLE api_tokens (
    id           BLOB PRIMARY KEY NOT NULL,
    clinic_id    BLOB NOT NULL REFERENCES clinics(id),
    name         TEXT NOT NULL,
    prefix       TEXT NOT NULL,
    token_hash   TEXT NOT NULL UNIQUE,
    scopes       TEXT NOT NULL,
    created_by   BLOB NOT NULL REFERENCES users(id),
    created_at   BIGINT NOT NULL,
    expires_at   BIGINT NOT NULL,
    revoked_at   BIGINT,
    revoked_by   BLOB REFERENCES users(id),
    last_used_at BIGINT
);
CREATE INDEX api_tokens_by_clinic ON api_tokens (clinic_id, created_at);

-- Every audit row a token's request causes names the token (hashed into the chain when present).
ALTER TABLE audit_events ADD COLUMN actor_token_id TEXT;

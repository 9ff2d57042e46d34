-- API tokens for integrations (issue 8). Only the SHA-256 of the secret is stored (the secret is
-- 256 random bits, so a fast hash suffices); `prefix` is its first characters, shown in lists so
-- an admin can tell tokens apart. `scopes` is a space-separated list of permissions::Scope texts.
CREATE TABLE api_tokens (
    id           UUID PRIMARY KEY NOT NULL,
    clinic_id    UUID NOT NULL REFERENCES clinics(id),
    name         TEXT NOT NULL,
    prefix       TEXT NOT NULL,
    token_hash   TEXT NOT NULL UNIQUE,
    scopes       TEXT NOT NULL,
    created_by   UUID NOT NULL REFERENCES users(id),
    created_at   TIMESTAMPTZ NOT NULL,
    expires_at   TIMESTAMPTZ NOT NULL,
    revoked_at   TIMESTAMPTZ,
    revoked_by   UUID REFERENCES users(id),
    last_used_at TIMESTAMPTZ
);
CREATE INDEX api_tokens_by_clinic ON api_tokens (clinic_id, created_at);

-- Every audit row a token's request causes names the token (hashed into the chain when present).
ALTER TABLE audit_events ADD COLUMN actor_token_id TEXT;

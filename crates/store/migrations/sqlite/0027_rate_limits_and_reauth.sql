-- Issue 9 (security): rate-limit counters shared by every server process on this database, and
-- the time each session last proved its password (re-authentication before signing or export).
-- One row per (bucket, window): bucket is a limit name and a hashed subject (address or account),
-- so the table holds no personal data. Rows past expires_at are pruned as new windows open.
CREATE TABLE rate_limit_counters (
    bucket       TEXT NOT NULL,
    window_start BIGINT NOT NULL,
    hits         BIGINT NOT NULL,
    expires_at   BIGINT NOT NULL,
    PRIMARY KEY (bucket, window_start)
);
CREATE INDEX rate_limit_counters_expiry ON rate_limit_counters (expires_at);

-- NULL: the password was last entered at sign-in (created_at).
ALTER TABLE sessions ADD COLUMN authenticated_at BIGINT;

-- Idempotency keys (issue 9): a retried API request carrying the same `Idempotency-Key` gets the
-- original answer instead of being applied twice. The row is inserted in the same transaction as
-- the change it guards (so a stored key means a stored change), and the response is filled in
-- right after. Keys belong to one principal (an account or an API token) and expire; the job loop
-- deletes expired rows.
CREATE TABLE idempotency_keys (
    principal             TEXT NOT NULL,
    idempotency_key       TEXT NOT NULL,
    request_hash          TEXT NOT NULL,
    method                TEXT NOT NULL,
    path                  TEXT NOT NULL,
    created_at            BIGINT NOT NULL,
    expires_at            BIGINT NOT NULL,
    response_status       INTEGER,
    response_content_type TEXT,
    response_body         BLOB,
    PRIMARY KEY (principal, idempotency_key)
);
CREATE INDEX idempotency_keys_by_expiry ON idempotency_keys (expires_at);

-- Webhooks (issue 8). An endpoint subscribes to event types (space-separated webhook::EventType
-- texts); its secret keys the HMAC of every delivery, so it is stored as given (shown once).
CREATE TABLE webhook_endpoints (
    id         UUID PRIMARY KEY NOT NULL,
    clinic_id  UUID NOT NULL REFERENCES clinics(id),
    url        TEXT NOT NULL,
    events     TEXT NOT NULL,
    secret     TEXT NOT NULL,
    active     BOOLEAN NOT NULL,
    created_by UUID NOT NULL REFERENCES users(id),
    created_at TIMESTAMPTZ NOT NULL
);
CREATE INDEX webhook_endpoints_by_clinic ON webhook_endpoints (clinic_id, active);

-- One row per event and subscribed endpoint, written in the transaction of the change that caused
-- the event (an outbox). The delivery job claims a row by moving next_attempt_at past its lease,
-- so two servers never send the same row at once. The payload holds ids and the type only.
CREATE TABLE webhook_deliveries (
    id               UUID PRIMARY KEY NOT NULL,
    clinic_id        UUID NOT NULL REFERENCES clinics(id),
    endpoint_id      UUID NOT NULL REFERENCES webhook_endpoints(id),
    event_id         UUID NOT NULL,
    event_type       TEXT NOT NULL,
    payload          TEXT NOT NULL,
    status           TEXT NOT NULL CHECK (status IN ('pending','delivered','failed')),
    attempts         INTEGER NOT NULL DEFAULT 0,
    next_attempt_at  TIMESTAMPTZ NOT NULL,
    last_status_code INTEGER,
    last_error       TEXT,
    created_at       TIMESTAMPTZ NOT NULL,
    delivered_at     TIMESTAMPTZ
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (status, next_attempt_at);
CREATE INDEX webhook_deliveries_by_clinic ON webhook_deliveries (clinic_id, created_at);

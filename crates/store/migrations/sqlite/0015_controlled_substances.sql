-- The Schedule III controlled-substance ledger (KAP-SPEC 9). Ids are the domain's; dates are
-- ISO calendar dates as text; quantities are integer micrograms (kapstone_domain::ledger::quantity).
--
-- A location's DEA registration and its ledger settings (waste witness, retention, holidays),
-- both as the domain's JSON. `version` counts changes, so an entry can be traced to the settings
-- it was checked under (`cs_ledger_entries.settings_version`).
CREATE TABLE cs_registrations (
    location_id BLOB PRIMARY KEY NOT NULL REFERENCES locations(id),
    clinic_id   BLOB NOT NULL REFERENCES clinics(id),
    body        TEXT NOT NULL,
    settings    TEXT NOT NULL,
    version     BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL,
    updated_by  BLOB NOT NULL REFERENCES users(id)
);

-- Products the clinic stocks (name, substance, NDC, form and container size, as JSON).
CREATE TABLE cs_products (
    id         BLOB PRIMARY KEY NOT NULL,
    clinic_id  BLOB NOT NULL REFERENCES clinics(id),
    ndc        TEXT NOT NULL,
    name       TEXT NOT NULL,
    body       TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    UNIQUE (clinic_id, ndc)
);

-- Lots with the expiry printed on them. A lot number is unique within its product.
CREATE TABLE cs_lots (
    product_id BLOB NOT NULL REFERENCES cs_products(id),
    number     TEXT NOT NULL,
    expiry     TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (product_id, number)
);

-- The ledger: one hash chain per location (kapstone_domain::ledger::chain). `body` is the entry's
-- JSON exactly as hashed (TEXT, never jsonb); the other columns are copies for indexes, hashed
-- too and checked against the body by `kapstone ledger verify`. `change_ug` is the change the
-- entry made to its lot's balance, so balances are sums; the verifier re-derives each one.
CREATE TABLE cs_ledger_entries (
    location_id      BLOB NOT NULL REFERENCES locations(id),
    seq              BIGINT NOT NULL,
    entry_id         BLOB NOT NULL UNIQUE,
    clinic_id        BLOB NOT NULL REFERENCES clinics(id),
    product_id       BLOB NOT NULL REFERENCES cs_products(id),
    lot              TEXT NOT NULL,
    kind             TEXT NOT NULL,
    occurred_at      BIGINT NOT NULL,
    recorded_at      BIGINT NOT NULL,
    recorded_by      BLOB NOT NULL REFERENCES users(id),
    session_id       BLOB,
    patient_id       BLOB,
    change_ug        BIGINT NOT NULL,
    settings_version BIGINT NOT NULL,
    body             TEXT NOT NULL,
    prev_hash        TEXT NOT NULL,
    hash             TEXT NOT NULL,
    PRIMARY KEY (location_id, seq)
);
CREATE INDEX cs_ledger_by_lot ON cs_ledger_entries (location_id, product_id, lot, seq);
CREATE INDEX cs_ledger_by_time ON cs_ledger_entries (location_id, occurred_at);
CREATE INDEX cs_ledger_by_session ON cs_ledger_entries (session_id);
CREATE INDEX cs_ledger_by_patient ON cs_ledger_entries (patient_id, occurred_at);
CREATE TRIGGER cs_ledger_entries_no_update BEFORE UPDATE ON cs_ledger_entries
BEGIN SELECT RAISE(ABORT, 'cs_ledger_entries is append-only'); END;
CREATE TRIGGER cs_ledger_entries_no_delete BEFORE DELETE ON cs_ledger_entries
BEGIN SELECT RAISE(ABORT, 'cs_ledger_entries is append-only'); END;

-- Each location's chain head: the number of entries and the hash of the last. Moving it takes
-- the row lock that keeps two writers from forking the chain.
CREATE TABLE cs_ledger_heads (
    location_id BLOB PRIMARY KEY NOT NULL REFERENCES locations(id),
    seq         BIGINT NOT NULL,
    hash        TEXT NOT NULL
);

-- An inventory: its lines are the ledger's inventory_count entries naming its id.
CREATE TABLE cs_inventories (
    id          BLOB PRIMARY KEY NOT NULL,
    clinic_id   BLOB NOT NULL REFERENCES clinics(id),
    location_id BLOB NOT NULL REFERENCES locations(id),
    kind        TEXT NOT NULL,
    taken_at    TEXT NOT NULL,
    taken_on    TEXT NOT NULL,
    occurred_at BIGINT NOT NULL,
    taken_by    BLOB NOT NULL REFERENCES users(id),
    lines       BIGINT NOT NULL
);
CREATE INDEX cs_inventories_by_location ON cs_inventories (location_id, occurred_at);
CREATE TRIGGER cs_inventories_no_update BEFORE UPDATE ON cs_inventories
BEGIN SELECT RAISE(ABORT, 'cs_inventories is append-only'); END;
CREATE TRIGGER cs_inventories_no_delete BEFORE DELETE ON cs_inventories
BEGIN SELECT RAISE(ABORT, 'cs_inventories is append-only'); END;

-- Discrepancies: the events are the record (append-only); the row keeps what lists need.
CREATE TABLE cs_discrepancies (
    id          BLOB PRIMARY KEY NOT NULL,
    clinic_id   BLOB NOT NULL REFERENCES clinics(id),
    location_id BLOB NOT NULL REFERENCES locations(id),
    found_on    TEXT NOT NULL,
    opened_at   BIGINT NOT NULL,
    closed_at   BIGINT
);
CREATE INDEX cs_discrepancies_open ON cs_discrepancies (clinic_id, closed_at);
CREATE TABLE cs_discrepancy_events (
    discrepancy_id BLOB NOT NULL REFERENCES cs_discrepancies(id),
    seq            BIGINT NOT NULL,
    at             BIGINT NOT NULL,
    by_user        BLOB NOT NULL REFERENCES users(id),
    body           TEXT NOT NULL,
    PRIMARY KEY (discrepancy_id, seq)
);
CREATE TRIGGER cs_discrepancy_events_no_update BEFORE UPDATE ON cs_discrepancy_events
BEGIN SELECT RAISE(ABORT, 'cs_discrepancy_events is append-only'); END;
CREATE TRIGGER cs_discrepancy_events_no_delete BEFORE DELETE ON cs_discrepancy_events
BEGIN SELECT RAISE(ABORT, 'cs_discrepancy_events is append-only'); END;

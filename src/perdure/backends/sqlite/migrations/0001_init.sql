-- The event log, its projections, the job queue and streams.
-- Times are epoch seconds (REAL). Event data is JSON text (perdure.world.dumps).

CREATE TABLE runs (
    id              TEXT PRIMARY KEY,
    workflow_name   TEXT NOT NULL,
    status          TEXT NOT NULL,
    idempotency_key TEXT UNIQUE,
    created_at      REAL NOT NULL,
    updated_at      REAL NOT NULL,
    started_at      REAL,
    completed_at    REAL,
    last_seq        INTEGER NOT NULL DEFAULT 0,
    result_seq      INTEGER NOT NULL DEFAULT 0,
    consumed_seq    INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX runs_status_id ON runs (status, id);
CREATE INDEX runs_workflow_id ON runs (workflow_name, id);

-- A rowid table on purpose: rows may carry payloads of megabytes.
CREATE TABLE events (
    run_id         TEXT NOT NULL,
    seq            INTEGER NOT NULL,
    event_type     TEXT NOT NULL,
    correlation_id TEXT,
    data           TEXT,
    created_at     REAL NOT NULL,
    PRIMARY KEY (run_id, seq)
);
-- Invariant 3: creation events are unique per (run, correlation id, type).
CREATE UNIQUE INDEX events_creation ON events (run_id, correlation_id, event_type)
    WHERE event_type IN ('run_created', 'step_created', 'wait_created', 'hook_created');

-- seq: the seq of the entity's creation event (creation order for listings).
CREATE TABLE steps (
    run_id         TEXT NOT NULL,
    correlation_id TEXT NOT NULL,
    seq            INTEGER NOT NULL,
    name           TEXT NOT NULL,
    status         TEXT NOT NULL,
    attempt        INTEGER NOT NULL DEFAULT 0,
    created_at     REAL NOT NULL,
    started_at     REAL,
    completed_at   REAL,
    retry_after    REAL,
    PRIMARY KEY (run_id, correlation_id)
);
CREATE INDEX steps_run_seq ON steps (run_id, seq);

CREATE TABLE waits (
    run_id         TEXT NOT NULL,
    correlation_id TEXT NOT NULL,
    seq            INTEGER NOT NULL,
    status         TEXT NOT NULL,
    resume_at      REAL NOT NULL,
    created_at     REAL NOT NULL,
    completed_at   REAL,
    PRIMARY KEY (run_id, correlation_id)
);
CREATE INDEX waits_run_seq ON waits (run_id, seq);
CREATE INDEX waits_due ON waits (resume_at) WHERE status = 'waiting';

CREATE TABLE hooks (
    run_id         TEXT NOT NULL,
    correlation_id TEXT NOT NULL,
    seq            INTEGER NOT NULL,
    token          TEXT NOT NULL,
    status         TEXT NOT NULL,
    is_webhook     INTEGER NOT NULL DEFAULT 0,
    created_at     REAL NOT NULL,
    disposed_at    REAL,
    PRIMARY KEY (run_id, correlation_id)
);
CREATE INDEX hooks_run_seq ON hooks (run_id, seq);
CREATE UNIQUE INDEX hooks_active_token ON hooks (token) WHERE status = 'active';

CREATE TABLE jobs (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    kind             TEXT NOT NULL,
    run_id           TEXT NOT NULL,
    correlation_id   TEXT,
    due_at           REAL NOT NULL,
    claimed_by       TEXT,
    lease_expires_at REAL,
    attempts         INTEGER NOT NULL DEFAULT 0,
    created_at       REAL NOT NULL
);
CREATE INDEX jobs_due ON jobs (due_at);
CREATE INDEX jobs_run ON jobs (run_id);
-- At most one unclaimed continuation per run; one job per step.
CREATE UNIQUE INDEX jobs_workflow_unclaimed ON jobs (run_id)
    WHERE kind = 'workflow' AND claimed_by IS NULL;
CREATE UNIQUE INDEX jobs_step ON jobs (run_id, correlation_id) WHERE kind = 'step';

CREATE TABLE chunks (
    run_id     TEXT NOT NULL,
    stream     TEXT NOT NULL,
    idx        INTEGER NOT NULL,
    kind       INTEGER NOT NULL,
    data       BLOB NOT NULL,
    created_at REAL NOT NULL,
    PRIMARY KEY (run_id, stream, idx)
);

CREATE TABLE workflows (
    name          TEXT PRIMARY KEY,
    registered_at REAL NOT NULL,
    last_seen_at  REAL NOT NULL
);

-- The event log, its projections, the job queue and streams, in schema perdure.
--
-- Times are epoch seconds in double precision, exactly the floats the World speaks
-- (as in the SQLite backend). Not timestamptz: it keeps microseconds, and the
-- runtime stamps result events with its own clock and must read back *exactly*
-- that value on replay (perdure.world.NewEvent). perdure.clock() is the server's
-- time in the same unit; to_timestamp(created_at) shows one as a timestamptz.
-- Event data is JSON *text* (perdure.world.dumps escapes NUL as \u0000), never
-- jsonb: jsonb refuses \u0000 and reorders keys.
--
-- Text columns (but data) are COLLATE "C": byte order, as in SQLite, for listings and cursors
-- alike, and the cheapest comparisons in the indexes.
--
-- fillfactor leaves room for HOT updates on the rows updated in place (runs,
-- steps, jobs). No foreign keys on the hot tables: every writer goes through perdure.append_events
-- or perdure._create_run, which lock and check the run row themselves.

CREATE SCHEMA IF NOT EXISTS perdure;

-- Now, in epoch seconds (the wall clock, not the transaction start).
CREATE FUNCTION perdure.clock() RETURNS float8
    LANGUAGE sql VOLATILE PARALLEL SAFE
    AS $$ SELECT extract(epoch FROM clock_timestamp())::float8 $$;

CREATE TABLE perdure.runs (
    id              text COLLATE "C" PRIMARY KEY,
    workflow_name   text COLLATE "C" NOT NULL,
    status          text COLLATE "C" NOT NULL,
    idempotency_key text COLLATE "C" UNIQUE,
    created_at      double precision NOT NULL,
    updated_at      double precision NOT NULL,
    started_at      double precision,
    completed_at    double precision,
    last_seq        integer NOT NULL DEFAULT 0,
    result_seq      integer NOT NULL DEFAULT 0,
    consumed_seq    integer NOT NULL DEFAULT 0
) WITH (fillfactor = 80);
CREATE INDEX runs_status_id ON perdure.runs (status, id);
CREATE INDEX runs_workflow_id ON perdure.runs (workflow_name, id);
CREATE INDEX runs_active_id ON perdure.runs (id) WHERE status IN ('pending', 'running');

CREATE TABLE perdure.events (
    run_id         text COLLATE "C" NOT NULL,
    seq            integer NOT NULL,
    event_type     text COLLATE "C" NOT NULL,
    correlation_id text COLLATE "C",
    data           text,
    created_at     double precision NOT NULL,
    PRIMARY KEY (run_id, seq)
);
-- Invariant 3: creation events are unique per (run, correlation id, type).
CREATE UNIQUE INDEX events_creation ON perdure.events (run_id, correlation_id, event_type)
    WHERE event_type IN ('run_created', 'step_created', 'wait_created', 'hook_created');

-- seq: the seq of the entity's creation event (creation order for listings).
CREATE TABLE perdure.steps (
    run_id         text COLLATE "C" NOT NULL,
    correlation_id text COLLATE "C" NOT NULL,
    seq            integer NOT NULL,
    name           text COLLATE "C" NOT NULL,
    status         text COLLATE "C" NOT NULL,
    attempt        integer NOT NULL DEFAULT 0,
    created_at     double precision NOT NULL,
    started_at     double precision,
    completed_at   double precision,
    retry_after    double precision,
    PRIMARY KEY (run_id, correlation_id)
) WITH (fillfactor = 80);
CREATE INDEX steps_run_seq ON perdure.steps (run_id, seq);

CREATE TABLE perdure.waits (
    run_id         text COLLATE "C" NOT NULL,
    correlation_id text COLLATE "C" NOT NULL,
    seq            integer NOT NULL,
    status         text COLLATE "C" NOT NULL,
    resume_at      double precision NOT NULL,
    created_at     double precision NOT NULL,
    completed_at   double precision,
    PRIMARY KEY (run_id, correlation_id)
);
CREATE INDEX waits_run_seq ON perdure.waits (run_id, seq);
CREATE INDEX waits_due ON perdure.waits (resume_at) WHERE status = 'waiting';

CREATE TABLE perdure.hooks (
    run_id         text COLLATE "C" NOT NULL,
    correlation_id text COLLATE "C" NOT NULL,
    seq            integer NOT NULL,
    token          text COLLATE "C" NOT NULL,
    status         text COLLATE "C" NOT NULL,
    is_webhook     boolean NOT NULL DEFAULT false,
    created_at     double precision NOT NULL,
    disposed_at    double precision,
    PRIMARY KEY (run_id, correlation_id)
);
CREATE INDEX hooks_run_seq ON perdure.hooks (run_id, seq);
CREATE UNIQUE INDEX hooks_active_token ON perdure.hooks (token) WHERE status = 'active';

CREATE TABLE perdure.jobs (
    id               bigserial PRIMARY KEY,
    kind             text COLLATE "C" NOT NULL,
    run_id           text COLLATE "C" NOT NULL,
    correlation_id   text COLLATE "C",
    due_at           double precision NOT NULL,
    claimed_by       text COLLATE "C",
    lease_expires_at double precision,
    attempts         integer NOT NULL DEFAULT 0,
    created_at       double precision NOT NULL DEFAULT perdure.clock()
) WITH (fillfactor = 80);
CREATE INDEX jobs_run ON perdure.jobs (run_id);
-- claim: unclaimed jobs by due time, expired leases by expiry.
CREATE INDEX jobs_unclaimed_due ON perdure.jobs (due_at, id) WHERE claimed_by IS NULL;
CREATE INDEX jobs_claimed_lease ON perdure.jobs (lease_expires_at) WHERE claimed_by IS NOT NULL;
-- At most one unclaimed continuation per run; one job per step.
CREATE UNIQUE INDEX jobs_workflow_unclaimed ON perdure.jobs (run_id)
    WHERE kind = 'workflow' AND claimed_by IS NULL;
CREATE UNIQUE INDEX jobs_step ON perdure.jobs (run_id, correlation_id) WHERE kind = 'step';

-- kind: 0 bytes, 1 a serialized value, 2 EOF (always the last chunk of its stream).
CREATE TABLE perdure.chunks (
    run_id     text COLLATE "C" NOT NULL,
    stream     text COLLATE "C" NOT NULL,
    idx        integer NOT NULL,
    kind       smallint NOT NULL,
    data       bytea NOT NULL,
    created_at double precision NOT NULL,
    PRIMARY KEY (run_id, stream, idx)
);

-- Workflow names a deployment can run (checked by perdure.start_workflow).
CREATE TABLE perdure.workflows (
    name          text COLLATE "C" PRIMARY KEY,
    registered_at double precision NOT NULL,
    last_seen_at  double precision NOT NULL
);

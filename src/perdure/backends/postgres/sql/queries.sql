-- Postgres queries, one named section each (loaded by perdure.backends._sqlfile).
-- Writes are calls of the functions in migrations/0002_functions.sql: one round
-- trip, one transaction each (the pool's connections are in autocommit mode).
-- Times are epoch seconds (double precision). Reads select columns in the order of
-- the fields of the records in perdure.world, so a row builds its record positionally.

-- ---------------------------------------------------------------- migrations

-- name: has_migrations_table
SELECT to_regclass('perdure.migrations') IS NOT NULL;

-- name: schema_version
SELECT coalesce(max(version), 0) FROM perdure.migrations;

-- name: create_migrations_table
CREATE SCHEMA IF NOT EXISTS perdure;
CREATE TABLE IF NOT EXISTS perdure.migrations (
    version    integer PRIMARY KEY,
    name       text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
);

-- name: applied_versions
SELECT version FROM perdure.migrations ORDER BY version;

-- name: record_migration
INSERT INTO perdure.migrations (version, name) VALUES (%s, %s);

-- name: migrate_lock
SELECT pg_advisory_lock(%s);

-- name: migrate_unlock
SELECT pg_advisory_unlock(%s);

-- name: register_workflows
INSERT INTO perdure.workflows (name, registered_at, last_seen_at)
SELECT n, perdure.clock(), perdure.clock() FROM unnest(%s::text[]) AS n
ON CONFLICT (name) DO UPDATE SET last_seen_at = excluded.last_seen_at;

-- name: registered_workflows
SELECT name FROM perdure.workflows ORDER BY name;

-- ---------------------------------------------------------------- runs and events

-- name: create_run
SELECT * FROM perdure.create_run(%s, %s, %s, %s, %s, %s, %s);

-- name: create_runs
SELECT * FROM perdure.create_runs(%s::text[], %b::text[], %s::text[], %s::text[],
                                  %s::float8[]);

-- name: create_run_started
SELECT * FROM perdure.create_run_started(
    %s, %s, %s, %s, %s,
    %s::text[], %s::text[], %b::text[], %s::float8[],
    %s::text[], %s::text[], %s::boolean[], %s::float8[], %s::float8[],
    %s::text[], %s::text[], %s::text[], %s::float8[], %s::text[], %s::float8[], %s);

-- name: create_run_first_step
SELECT * FROM perdure.create_run_first_step(
    %s, %s, %s, %s, %s, %s, %s::float8, %s, %s, %s, %s, %s::float8, %s::float8, %s,
    %s::float8);

-- name: create_run_ended
SELECT * FROM perdure.create_run_ended(
    %s, %s, %s, %s, %s, %s, %s::float8, %s, %s, %s::float8);

-- name: create_run_statement
-- For a caller's own connection and transaction (engine.start(connection=...)).
SELECT run_id FROM perdure._create_run(%s, %s, %s, %s, NULL);

-- name: append_next_step
SELECT last_seq, written_at, job_ids, closed_streams FROM perdure.append_next_step(
    %s, %s::integer, %s::integer, %s, %s, %s, %s::float8, %s, %s, %s, %s, %s::float8,
    %s::float8, %s, %s::float8, %s::bigint, %s);

-- name: append_last_step
SELECT last_seq, written_at, job_ids, closed_streams FROM perdure.append_last_step(
    %s, %s::integer, %s::integer, %s, %s, %s, %s::float8, %s, %s, %s::float8, %s::bigint,
    %s, %s);

-- name: append_one_step_run
SELECT last_seq, written_at, job_ids, closed_streams FROM perdure.append_one_step_run(
    %s, %s::integer, %s::integer, %s::text[], %s::text[], %b::text[], %s::float8[], %s,
    %s::bigint, %s, %s);

-- name: append_events
SELECT last_seq, written_at, job_ids, closed_streams FROM perdure.append_events(
    %s, %s::text[], %s::text[], %b::text[], %s::float8[],
    %s::text[], %s::text[], %s::boolean[], %s::float8[], %s::float8[],
    %s::integer, %s::integer,
    %s::text[], %s::text[], %s::text[], %s::float8[], %s::text[], %s::float8[],
    %s::bigint[], %s, %s);

-- name: append_many
SELECT last_seq, written_at, job_ids, closed_streams FROM perdure.append_many(
    %s::text[], %s::integer[],
    %s::text[], %s::text[], %b::text[], %s::float8[],
    %s::text[], %s::text[], %s::boolean[], %s::float8[], %s::float8[],
    %s::integer[], %s::integer[],
    %s::integer[], %s::text[], %s::text[], %s::text[], %s::float8[], %s::text[], %s::float8[],
    %s::integer[], %s::bigint[], %s::boolean[], %s::boolean[]);

-- name: get_run
SELECT id, workflow_name, status, idempotency_key, created_at,
       updated_at, started_at, completed_at,
       last_seq, result_seq, consumed_seq
FROM perdure.runs WHERE id = %s;

-- name: get_run_by_key
SELECT id, workflow_name, status, idempotency_key, created_at,
       updated_at, started_at, completed_at,
       last_seq, result_seq, consumed_seq
FROM perdure.runs WHERE idempotency_key = %s;

-- name: list_runs
-- Newest first by id (UUIDv7: time-ordered). Not prepared: the optional filters
-- fold away in a custom plan.
SELECT id, workflow_name, status, idempotency_key, created_at,
       updated_at, started_at, completed_at,
       last_seq, result_seq, consumed_seq
FROM perdure.runs
WHERE (%(status)s::text IS NULL OR status = %(status)s::text)
  AND (%(workflow)s::text IS NULL OR workflow_name = %(workflow)s::text)
  AND (%(created_after)s::float8 IS NULL OR created_at > %(created_after)s::float8)
  AND (%(created_before)s::float8 IS NULL OR created_at < %(created_before)s::float8)
  AND (%(cursor)s::text IS NULL OR id < %(cursor)s::text)
ORDER BY id DESC
LIMIT %(limit)s;

-- name: read_ends
-- The terminal event is the last of its run: no event follows it. Each run is
-- looked up by its id (OFFSET 0 keeps the lookup per id): as a join filtered by
-- status, statistics taken while most runs were running made the plan read every
-- ended run through runs_status_id on every call.
SELECT e.run_id, e.seq, e.event_type, e.correlation_id, e.data, e.created_at
FROM unnest(%s::text[]) AS u(id)
CROSS JOIN LATERAL (
    SELECT r.id, r.last_seq FROM perdure.runs r
    WHERE r.id = u.id AND r.status IN ('completed', 'failed', 'cancelled')
    OFFSET 0) r
JOIN perdure.events e ON e.run_id = r.id AND e.seq = r.last_seq;

-- name: list_events
SELECT run_id, seq, event_type, correlation_id, data, created_at
FROM perdure.events
WHERE run_id = %(run_id)s AND seq > %(after_seq)s
  AND (%(types)s::text[] IS NULL OR event_type = ANY (%(types)s::text[]))
ORDER BY seq
LIMIT %(limit)s::bigint;

-- ---------------------------------------------------------------- projections

-- name: get_step
SELECT run_id, correlation_id, name, status, attempt, created_at,
       started_at, completed_at, retry_after
FROM perdure.steps WHERE run_id = %s AND correlation_id = %s;

-- name: list_steps
SELECT seq, run_id, correlation_id, name, status, attempt, created_at,
       started_at, completed_at, retry_after
FROM perdure.steps
WHERE run_id = %(run_id)s AND seq > %(after_seq)s
  AND (%(status)s::text IS NULL OR status = %(status)s::text)
ORDER BY seq
LIMIT %(limit)s;

-- name: list_waits
SELECT seq, run_id, correlation_id, status, resume_at,
       created_at, completed_at
FROM perdure.waits
WHERE run_id = %(run_id)s AND seq > %(after_seq)s
  AND (%(status)s::text IS NULL OR status = %(status)s::text)
ORDER BY seq
LIMIT %(limit)s;

-- name: list_hooks
-- Creation order: by run (ids are time-ordered), then seq. Not prepared.
SELECT seq, run_id, correlation_id, token, status, is_webhook, created_at,
       disposed_at
FROM perdure.hooks
WHERE (%(run_id)s::text IS NULL OR run_id = %(run_id)s::text)
  AND (%(status)s::text IS NULL OR status = %(status)s::text)
  AND (run_id, seq) > (%(after_run)s::text, %(after_seq)s::integer)
ORDER BY run_id, seq
LIMIT %(limit)s;

-- name: get_hook_by_token
SELECT run_id, correlation_id, token, status, is_webhook, created_at,
       disposed_at
FROM perdure.hooks WHERE token = %s AND status = 'active';

-- ---------------------------------------------------------------- jobs

-- name: enqueue_jobs
SELECT perdure._insert_jobs(%s::text[], %s::text[], %s::text[], %s::float8[], %s::text[],
                            %s::float8[], perdure.clock());

-- name: claim_jobs
SELECT id, kind, run_id, correlation_id, due_at, claimed_by, lease_expires_at, attempts
FROM perdure.claim_jobs(%s, %s, %s, %s::text[]);

-- name: claim_with_logs
-- claim_jobs, then (same statement, same snapshot) the first events of each claimed
-- workflow job's run. Job rows have an id and no seq; event rows a seq and no id.
WITH c AS MATERIALIZED (
    SELECT * FROM perdure.claim_jobs(%(worker)s, %(limit)s, %(lease)s,
                                     '{workflow,step}'::text[]))
SELECT c.id, c.kind, c.run_id, c.correlation_id, c.due_at, c.claimed_by,
       c.lease_expires_at, c.attempts,
       NULL::integer AS seq, NULL::text AS event_type, NULL::text AS data,
       NULL::float8 AS created_at
FROM c
UNION ALL
SELECT NULL, NULL, e.run_id, e.correlation_id, NULL, NULL, NULL, NULL,
       e.seq, e.event_type, e.data, e.created_at
FROM (SELECT DISTINCT c.run_id FROM c WHERE c.kind = 'workflow') r
CROSS JOIN LATERAL (
    SELECT * FROM perdure.events e WHERE e.run_id = r.run_id
    ORDER BY e.seq LIMIT %(log_limit)s) e;

-- name: extend_leases
UPDATE perdure.jobs
SET lease_expires_at = perdure.clock() + %s::float8
WHERE id = ANY (%s::bigint[]) AND claimed_by = %s
RETURNING id;

-- name: ack_jobs
SELECT perdure._ack(%s::bigint[], %s, perdure.clock());

-- name: release_jobs
SELECT perdure.release_jobs(%s, %s::bigint[]);

-- name: tidy_queue
-- Deleted jobs stay in the queue's indexes, where claims walk past them in due
-- order, until a vacuum; autovacuum visits at most once a minute (and may be off).
-- SKIP_LOCKED: a vacuum another worker runs already is enough. It never truncates
-- the table (vacuum_truncate = false, migration 0021).
VACUUM (SKIP_LOCKED) perdure.jobs;

-- name: list_jobs
SELECT id, kind, run_id, correlation_id, due_at, claimed_by,
       lease_expires_at, attempts
FROM perdure.jobs
WHERE (%(run_id)s::text IS NULL OR run_id = %(run_id)s::text)
ORDER BY id;

-- name: find_stranded_runs
-- Pending or running runs with runnable work and no job that will run it: no live
-- lease and nothing claimable now. A pending step whose retry_after is in the
-- future is a timer, not runnable work. now: epoch seconds, NULL for the server's.
WITH n AS (SELECT coalesce(%(now)s::float8, perdure.clock()) AS now)
SELECT r.id FROM perdure.runs r, n
WHERE r.status IN ('pending', 'running')
  AND r.id > %(after_id)s
  AND NOT EXISTS (
      SELECT 1 FROM perdure.jobs j
      WHERE j.run_id = r.id
        AND ((j.claimed_by IS NOT NULL AND j.lease_expires_at > n.now) OR j.due_at <= n.now))
  AND (r.status = 'pending'
       OR r.consumed_seq < r.result_seq
       OR EXISTS (
           SELECT 1 FROM perdure.steps s
           WHERE s.run_id = r.id
             AND (s.status = 'running'
                  OR (s.status = 'pending' AND (s.retry_after IS NULL OR s.retry_after <= n.now))))
       OR EXISTS (
           SELECT 1 FROM perdure.waits w
           WHERE w.run_id = r.id AND w.status = 'waiting' AND w.resume_at <= n.now))
ORDER BY r.id
LIMIT %(limit)s;

-- ---------------------------------------------------------------- streams

-- name: write_chunks
SELECT perdure.write_chunks(%s, %s, %s::smallint[], %b::bytea[]);

-- name: close_stream
SELECT perdure.close_stream(%s, %s);

-- name: stream_tail
-- The EOF chunk, when present, is always the last one.
SELECT idx, kind FROM perdure.chunks WHERE run_id = %s AND stream = %s
ORDER BY idx DESC LIMIT 1;

-- name: read_chunks
SELECT run_id, stream, idx, kind, data, created_at
FROM perdure.chunks
WHERE run_id = %s AND stream = %s AND idx >= %s
ORDER BY idx
LIMIT %s;

-- name: list_streams
-- Each stream's last chunk, by a skip scan over the stream names of the run.
WITH RECURSIVE s(stream) AS (
    (SELECT c.stream FROM perdure.chunks c WHERE c.run_id = %(run_id)s
     ORDER BY c.stream LIMIT 1)
    UNION ALL
    SELECT (SELECT c.stream FROM perdure.chunks c
            WHERE c.run_id = %(run_id)s AND c.stream > s.stream
            ORDER BY c.stream LIMIT 1)
    FROM s WHERE s.stream IS NOT NULL)
SELECT s.stream, t.idx, t.kind FROM s
CROSS JOIN LATERAL (
    SELECT c.idx, c.kind FROM perdure.chunks c
    WHERE c.run_id = %(run_id)s AND c.stream = s.stream
    ORDER BY c.idx DESC LIMIT 1) t
WHERE s.stream IS NOT NULL
ORDER BY s.stream;

-- SQLite queries, one named section each (loaded by perdure.backends._sqlfile).
-- Every write runs inside BEGIN IMMEDIATE, so writers are serialized and the run
-- row read first is effectively locked for the whole transaction.

-- ---------------------------------------------------------------- migrations

-- name: create_migrations_table
CREATE TABLE IF NOT EXISTS perdure_migrations (
    version    INTEGER PRIMARY KEY,
    name       TEXT NOT NULL,
    applied_at REAL NOT NULL
);

-- name: applied_versions
SELECT version FROM perdure_migrations ORDER BY version;

-- name: record_migration
INSERT INTO perdure_migrations (version, name, applied_at) VALUES (:version, :name, :now);

-- name: register_workflow
INSERT INTO workflows (name, registered_at, last_seen_at) VALUES (:name, :now, :now)
ON CONFLICT (name) DO UPDATE SET last_seen_at = excluded.last_seen_at;

-- name: registered_workflows
SELECT name FROM workflows ORDER BY name;

-- ---------------------------------------------------------------- runs

-- name: get_run
SELECT * FROM runs WHERE id = :run_id;

-- name: get_run_by_key
SELECT * FROM runs WHERE idempotency_key = :key;

-- name: insert_run
INSERT INTO runs (id, workflow_name, status, idempotency_key, created_at, updated_at,
                  last_seq, result_seq, consumed_seq)
VALUES (:run_id, :workflow, 'pending', :key, :created_at, :now, 1, 0, 0);

-- name: finish_append
UPDATE runs
SET last_seq = :last_seq,
    result_seq = :result_seq,
    consumed_seq = CASE WHEN :consumed THEN :last_seq ELSE consumed_seq END,
    updated_at = :now
WHERE id = :run_id;

-- name: list_runs
SELECT * FROM runs
WHERE (:status IS NULL OR status = :status)
  AND (:workflow IS NULL OR workflow_name = :workflow)
  AND (:created_after IS NULL OR created_at > :created_after)
  AND (:created_before IS NULL OR created_at < :created_before)
  AND (:cursor IS NULL OR id < :cursor)
ORDER BY id DESC
LIMIT :limit;

-- ---------------------------------------------------------------- events

-- name: insert_event
INSERT INTO events (run_id, seq, event_type, correlation_id, data, created_at)
VALUES (:run_id, :seq, :event_type, :correlation_id, :data, :created_at);

-- name: read_ends
-- The terminal event is the last of its run: no event follows it.
SELECT e.* FROM runs r
JOIN events e ON e.run_id = r.id AND e.seq = r.last_seq
WHERE r.id IN (SELECT value FROM json_each(:ids))
  AND r.status IN ('completed', 'failed', 'cancelled');

-- name: list_events
SELECT * FROM events
WHERE run_id = :run_id AND seq > :after_seq
  AND (:types IS NULL OR event_type IN (SELECT value FROM json_each(:types)))
ORDER BY seq
LIMIT :limit;

-- ------------------------------------------- one guarded statement per event type
-- Parameters: :run_id, :cid (correlation id), :seq (of this event), :ts (its time),
-- plus the projection fields read from the event's data. An UPDATE that matches
-- no row means the transition is illegal (or the entity unknown).

-- name: apply_run_started
UPDATE runs SET status = 'running', started_at = COALESCE(started_at, :ts)
WHERE id = :run_id AND status IN ('pending');

-- name: apply_run_completed
UPDATE runs SET status = 'completed', completed_at = :ts
WHERE id = :run_id AND status IN ('pending', 'running');

-- name: apply_run_failed
UPDATE runs SET status = 'failed', completed_at = :ts
WHERE id = :run_id AND status IN ('pending', 'running');

-- name: apply_run_cancelled
UPDATE runs SET status = 'cancelled', completed_at = :ts
WHERE id = :run_id AND status IN ('pending', 'running');

-- name: apply_step_created
INSERT INTO steps (run_id, correlation_id, seq, name, status, attempt, created_at)
VALUES (:run_id, :cid, :seq, :name, 'pending', 0, :ts);

-- name: apply_step_created_started
-- A step created and started in one batch (a worker claiming the step it just
-- made): one row, written running, as Postgres writes it.
INSERT INTO steps (run_id, correlation_id, seq, name, status, attempt, created_at, started_at)
VALUES (:run_id, :cid, :seq, :name, 'running', 1, :ts, :started_at);

-- name: apply_step_created_many
-- Steps created together (a fan-out), each started with its creation when
-- :started_at is not null: apply_step_created(_started) for many in one statement.
-- The times are parameters, not JSON: SQLite (3.40) does not read every double
-- back exactly from JSON text.
INSERT INTO steps (run_id, correlation_id, seq, name, status, attempt, created_at, started_at)
SELECT :run_id, json_extract(s.value, '$[0]'), json_extract(s.value, '$[1]'),
       json_extract(s.value, '$[2]'),
       CASE WHEN :started_at IS NULL THEN 'pending' ELSE 'running' END,
       CASE WHEN :started_at IS NULL THEN 0 ELSE 1 END, :ts, :started_at
FROM json_each(:steps) s;

-- name: apply_step_started
UPDATE steps SET status = 'running', attempt = attempt + 1,
                 started_at = COALESCE(started_at, :ts)
WHERE run_id = :run_id AND correlation_id = :cid AND status IN ('pending', 'running');

-- name: apply_step_retrying
UPDATE steps SET status = 'pending', retry_after = :retry_after
WHERE run_id = :run_id AND correlation_id = :cid AND status IN ('running');

-- name: apply_step_completed
UPDATE steps SET status = 'completed', completed_at = :ts
WHERE run_id = :run_id AND correlation_id = :cid AND status IN ('running');

-- name: apply_step_failed
UPDATE steps SET status = 'failed', completed_at = :ts
WHERE run_id = :run_id AND correlation_id = :cid AND status IN ('running');

-- name: apply_wait_created
INSERT INTO waits (run_id, correlation_id, seq, status, resume_at, created_at)
VALUES (:run_id, :cid, :seq, 'waiting', :resume_at, :ts);

-- name: apply_wait_completed
UPDATE waits SET status = 'completed', completed_at = :ts
WHERE run_id = :run_id AND correlation_id = :cid AND status IN ('waiting');

-- name: apply_hook_created
INSERT INTO hooks (run_id, correlation_id, seq, token, status, is_webhook, created_at)
VALUES (:run_id, :cid, :seq, :token, 'active', :is_webhook, :ts);

-- name: apply_hook_received
UPDATE hooks SET status = 'active'
WHERE run_id = :run_id AND correlation_id = :cid AND status IN ('active');

-- name: apply_hook_disposed
UPDATE hooks SET status = 'disposed', disposed_at = :ts
WHERE run_id = :run_id AND correlation_id = :cid AND status IN ('active');

-- name: active_hook_token
SELECT run_id, correlation_id FROM hooks WHERE token = :token AND status = 'active';

-- name: status_step
-- Current status of an entity, only to word a refusal.
SELECT status FROM steps WHERE run_id = :run_id AND correlation_id = :cid;

-- name: status_wait
SELECT status FROM waits WHERE run_id = :run_id AND correlation_id = :cid;

-- name: status_hook
SELECT status FROM hooks WHERE run_id = :run_id AND correlation_id = :cid;

-- ---------------------------------------------------------------- projections

-- name: get_step
SELECT * FROM steps WHERE run_id = :run_id AND correlation_id = :cid;

-- name: list_steps
SELECT * FROM steps
WHERE run_id = :run_id AND (:status IS NULL OR status = :status) AND seq > :after_seq
ORDER BY seq
LIMIT :limit;

-- name: list_waits
SELECT * FROM waits
WHERE run_id = :run_id AND (:status IS NULL OR status = :status) AND seq > :after_seq
ORDER BY seq
LIMIT :limit;

-- name: list_hooks
SELECT * FROM hooks
WHERE (:run_id IS NULL OR run_id = :run_id) AND (:status IS NULL OR status = :status)
  AND (run_id, seq) > (:after_run, :after_seq)
ORDER BY run_id, seq
LIMIT :limit;

-- name: get_hook_by_token
SELECT * FROM hooks WHERE token = :token AND status = 'active';

-- ---------------------------------------------------------------- jobs

-- name: upsert_workflow_job
-- Keeps the earlier due time when an unclaimed continuation already exists.
INSERT INTO jobs (kind, run_id, correlation_id, due_at, claimed_by, lease_expires_at,
                  attempts, created_at)
VALUES ('workflow', :run_id, NULL, :due_at, NULL, NULL, 0, :now)
ON CONFLICT (run_id) WHERE kind = 'workflow' AND claimed_by IS NULL
DO UPDATE SET due_at = MIN(due_at, excluded.due_at)
RETURNING id, due_at;

-- name: insert_claimed_workflow_job
INSERT INTO jobs (kind, run_id, correlation_id, due_at, claimed_by, lease_expires_at,
                  attempts, created_at)
VALUES ('workflow', :run_id, NULL, :due_at, :claimed_by, :lease_expires_at, 1, :now)
RETURNING id, due_at;

-- name: upsert_step_job
-- One job per step: enqueueing it again replaces its due time and claim.
INSERT INTO jobs (kind, run_id, correlation_id, due_at, claimed_by, lease_expires_at,
                  attempts, created_at)
VALUES ('step', :run_id, :cid, :due_at, :claimed_by, :lease_expires_at,
        CASE WHEN :claimed_by IS NULL THEN 0 ELSE 1 END, :now)
ON CONFLICT (run_id, correlation_id) WHERE kind = 'step'
DO UPDATE SET due_at = excluded.due_at,
              claimed_by = excluded.claimed_by,
              lease_expires_at = excluded.lease_expires_at,
              attempts = attempts + excluded.attempts
RETURNING id, due_at;

-- name: upsert_step_jobs
-- upsert_step_job for many steps of one run that share due time and claim (a
-- fan-out's). The times are parameters, not JSON: SQLite (3.40) does not read every
-- double back exactly from JSON text. Rows go in the array's order; SQLite applies
-- the conflict clause row by row, so a step named twice is updated as twice.
INSERT INTO jobs (kind, run_id, correlation_id, due_at, claimed_by, lease_expires_at,
                  attempts, created_at)
SELECT 'step', :run_id, c.value, :due_at, :claimed_by, :lease_expires_at,
       CASE WHEN :claimed_by IS NULL THEN 0 ELSE 1 END, :now
FROM json_each(:cids) c
WHERE true  -- parsing: ON CONFLICT after a SELECT needs a WHERE
ON CONFLICT (run_id, correlation_id) WHERE kind = 'step'
DO UPDATE SET due_at = excluded.due_at,
              claimed_by = excluded.claimed_by,
              lease_expires_at = excluded.lease_expires_at,
              attempts = attempts + excluded.attempts
RETURNING correlation_id, id, due_at;

-- name: any_claimable
-- Whether claim_jobs could find a job (its rows are a subset of these), read
-- without the write lock: an idle worker polls every 50 ms, and a claim's
-- BEGIN IMMEDIATE queued every writer of the file behind it to find nothing.
SELECT EXISTS (
    SELECT 1 FROM jobs
    WHERE due_at <= :now AND (claimed_by IS NULL OR lease_expires_at <= :now)
) AS found;

-- name: claim_jobs
-- Due jobs, unclaimed or with an expired lease, oldest due first. A workflow job
-- is skipped while another workflow job of its run holds a live lease, or while
-- an earlier claimable one of its run exists (at most one per run per claim).
UPDATE jobs
SET claimed_by = :worker, lease_expires_at = :now + :lease, attempts = attempts + 1
WHERE id IN (
    SELECT j.id FROM jobs AS j
    WHERE j.due_at <= :now
      AND (j.claimed_by IS NULL OR j.lease_expires_at <= :now)
      AND j.kind IN (SELECT value FROM json_each(:kinds))
      AND NOT (j.kind = 'workflow' AND EXISTS (
          SELECT 1 FROM jobs AS o
          WHERE o.run_id = j.run_id AND o.kind = 'workflow' AND o.id <> j.id
            AND ((o.claimed_by IS NOT NULL AND o.lease_expires_at > :now)
                 OR (o.due_at <= :now
                     AND (o.claimed_by IS NULL OR o.lease_expires_at <= :now)
                     AND (o.due_at < j.due_at OR (o.due_at = j.due_at AND o.id < j.id))))))
    ORDER BY j.due_at, j.id
    LIMIT :limit
)
RETURNING *;

-- name: extend_leases
UPDATE jobs SET lease_expires_at = :now + :lease
WHERE id IN (SELECT value FROM json_each(:ids)) AND claimed_by = :worker
RETURNING id;

-- name: ack_jobs
DELETE FROM jobs WHERE id IN (SELECT value FROM json_each(:ids)) AND claimed_by = :worker;

-- name: delete_jobs
DELETE FROM jobs WHERE id IN (SELECT value FROM json_each(:ids));

-- name: fold_released_workflow_jobs
-- A released workflow job whose run already has an unclaimed one folds into it
-- (the unique index allows only one), which becomes claimable at once.
UPDATE jobs SET due_at = MIN(due_at, :now)
WHERE kind = 'workflow' AND claimed_by IS NULL AND run_id IN (
    SELECT run_id FROM jobs
    WHERE id IN (SELECT value FROM json_each(:ids)) AND claimed_by = :worker
      AND kind = 'workflow');

-- name: drop_folded_workflow_jobs
DELETE FROM jobs
WHERE id IN (SELECT value FROM json_each(:ids)) AND claimed_by = :worker
  AND kind = 'workflow'
  AND EXISTS (SELECT 1 FROM jobs AS u WHERE u.run_id = jobs.run_id
              AND u.kind = 'workflow' AND u.claimed_by IS NULL);

-- name: release_jobs
UPDATE jobs SET claimed_by = NULL, lease_expires_at = NULL, due_at = MIN(due_at, :now)
WHERE id IN (SELECT value FROM json_each(:ids)) AND claimed_by = :worker;

-- name: list_jobs
SELECT * FROM jobs WHERE (:run_id IS NULL OR run_id = :run_id) ORDER BY id;

-- name: find_stranded_runs
-- Pending or running runs with runnable work and no job that will run it: no
-- live lease and nothing claimable now. A pending step whose retry_after is in
-- the future is a timer, not runnable work.
SELECT r.id FROM runs AS r
WHERE r.status IN ('pending', 'running')
  AND r.id > :after_id
  AND NOT EXISTS (
      SELECT 1 FROM jobs AS j
      WHERE j.run_id = r.id
        AND ((j.claimed_by IS NOT NULL AND j.lease_expires_at > :now) OR j.due_at <= :now))
  AND (r.status = 'pending'
       OR r.consumed_seq < r.result_seq
       OR EXISTS (
           SELECT 1 FROM steps AS s
           WHERE s.run_id = r.id
             AND (s.status = 'running'
                  OR (s.status = 'pending' AND (s.retry_after IS NULL OR s.retry_after <= :now))))
       OR EXISTS (
           SELECT 1 FROM waits AS w
           WHERE w.run_id = r.id AND w.status = 'waiting' AND w.resume_at <= :now))
ORDER BY r.id
LIMIT :limit;

-- ---------------------------------------------------------------- streams

-- name: stream_tail
-- The EOF chunk, when present, is always the last one.
SELECT idx, kind FROM chunks WHERE run_id = :run_id AND stream = :stream
ORDER BY idx DESC LIMIT 1;

-- name: insert_chunk
INSERT INTO chunks (run_id, stream, idx, kind, data, created_at)
VALUES (:run_id, :stream, :idx, :kind, :data, :now);

-- name: close_open_streams
INSERT INTO chunks (run_id, stream, idx, kind, data, created_at)
SELECT run_id, stream, MAX(idx) + 1, 2, X'', :now FROM chunks
WHERE run_id = :run_id
GROUP BY run_id, stream
HAVING MAX(kind = 2) = 0
RETURNING stream;

-- name: read_chunks
SELECT * FROM chunks WHERE run_id = :run_id AND stream = :stream AND idx >= :start
ORDER BY idx
LIMIT :limit;

-- name: list_streams
SELECT stream, MAX(idx) AS last_idx, MAX(kind = 2) AS closed FROM chunks
WHERE run_id = :run_id
GROUP BY stream
ORDER BY stream;

-- The write path, as functions: each World write is ONE round trip and one
-- transaction, and the Python side and the SQL API share every line of it.
--
-- Refusals RAISE with perdure's own SQLSTATEs, which the backend maps to errors:
--   PD001 EntityConflictError      PD002 StaleStateError
--   PD003 HookTokenConflictError   PD004 RunNotFoundError
--   PD005 WorkflowNotFoundError    PD006 ValueError (a malformed request)
-- Wake-ups are NOTIFY perdure '<key>' (transactional: sent at commit, never for a
-- rollback), keys as in perdure.world.Notifier: jobs, run:<id>, stream:<run>:<name>.
-- Advisory lock classes (two-int form): 1 per-run workflow claim, 2 per-stream writes.

-- A UUIDv7 string in the format of perdure.world.uuid7() (48-bit milliseconds,
-- version 7, random rand_a and rand_b, RFC variant), so ids sort by creation time.
CREATE FUNCTION perdure.uuid7() RETURNS text
    LANGUAGE sql VOLATILE PARALLEL SAFE
AS $$
    SELECT encode(
        set_bit(set_bit(
            overlay(uuid_send(gen_random_uuid())
                    PLACING substring(int8send(floor(extract(epoch FROM clock_timestamp()) * 1000)::bigint) FROM 3)
                    FROM 1 FOR 6),
            52, 1), 53, 1),
        'hex')::uuid::text
$$;

-- Word and raise the refusal of an event for an entity (the error path only).
CREATE FUNCTION perdure._refuse(p_run_id text, p_event text, p_entity text, p_cid text)
    RETURNS void LANGUAGE plpgsql
AS $$
DECLARE
    v_status text;
BEGIN
    IF p_cid IS NULL THEN
        RAISE EXCEPTION 'perdure: % needs a correlation id (run %)', p_event, p_run_id
            USING ERRCODE = 'PD001';
    END IF;
    EXECUTE format('SELECT status FROM perdure.%I WHERE run_id = $1 AND correlation_id = $2',
                   p_entity || 's')
        INTO v_status USING p_run_id, p_cid;
    IF v_status IS NULL THEN
        RAISE EXCEPTION 'perdure: % refused: no % % in run %', p_event, p_entity, p_cid, p_run_id
            USING ERRCODE = 'PD001';
    END IF;
    RAISE EXCEPTION 'perdure: % refused: % % of run % is %', p_event, p_entity, p_cid, p_run_id, v_status
        USING ERRCODE = 'PD001';
END
$$;

-- Insert jobs (parallel arrays, one element per job) at p_now; returns their ids.
-- workflow, unclaimed: at most one per run, a second keeps the earlier due time.
-- workflow, claimed:   inserted as is (a worker continuing a run it holds).
-- step:                one per step; enqueueing again replaces due time and claim.
-- NOTIFY jobs when one of them is unclaimed and due now.
CREATE FUNCTION perdure._insert_jobs(
    p_kinds text[], p_runs text[], p_cids text[], p_due float8[], p_claimed_by text[],
    p_lease float8[], p_now float8)
    RETURNS bigint[] LANGUAGE plpgsql
AS $$
DECLARE
    v_ids   bigint[] := '{}';
    v_id    bigint;
    v_due   float8;
    v_lease float8;
    v_by    text;
    v_wake  boolean := false;
BEGIN
    FOR i IN 1 .. coalesce(cardinality(p_kinds), 0) LOOP
        v_due := coalesce(p_due[i], p_now);
        v_by := p_claimed_by[i];
        v_lease := CASE WHEN v_by IS NULL THEN NULL
                        ELSE p_now + coalesce(p_lease[i], 30) END;
        IF p_kinds[i] = 'workflow' AND v_by IS NULL THEN
            INSERT INTO perdure.jobs AS j (kind, run_id, due_at, created_at)
            VALUES ('workflow', p_runs[i], v_due, p_now)
            ON CONFLICT (run_id) WHERE kind = 'workflow' AND claimed_by IS NULL
            DO UPDATE SET due_at = least(j.due_at, excluded.due_at)
            RETURNING j.id, j.due_at INTO v_id, v_due;
        ELSIF p_kinds[i] = 'workflow' THEN
            INSERT INTO perdure.jobs (kind, run_id, due_at, claimed_by, lease_expires_at,
                                      attempts, created_at)
            VALUES ('workflow', p_runs[i], v_due, v_by, v_lease, 1, p_now)
            RETURNING id INTO v_id;
        ELSIF p_kinds[i] = 'step' THEN
            IF p_cids[i] IS NULL THEN
                RAISE EXCEPTION 'perdure: a step job needs the step''s correlation id'
                    USING ERRCODE = 'PD006';
            END IF;
            INSERT INTO perdure.jobs AS j (kind, run_id, correlation_id, due_at, claimed_by,
                                           lease_expires_at, attempts, created_at)
            VALUES ('step', p_runs[i], p_cids[i], v_due, v_by, v_lease,
                    CASE WHEN v_by IS NULL THEN 0 ELSE 1 END, p_now)
            ON CONFLICT (run_id, correlation_id) WHERE kind = 'step'
            DO UPDATE SET due_at = excluded.due_at,
                          claimed_by = excluded.claimed_by,
                          lease_expires_at = excluded.lease_expires_at,
                          attempts = j.attempts + excluded.attempts
            RETURNING j.id INTO v_id;
        ELSE
            RAISE EXCEPTION 'perdure: unknown job kind %', p_kinds[i] USING ERRCODE = 'PD006';
        END IF;
        v_ids := v_ids || v_id;
        IF v_by IS NULL AND v_due <= p_now THEN
            v_wake := true;
        END IF;
    END LOOP;
    IF v_wake THEN
        PERFORM pg_notify('perdure', 'jobs');
    END IF;
    RETURN v_ids;
END
$$;

-- Workflow jobs of these runs were just deleted (acked): an unclaimed continuation
-- of the same run that is due was held back by their lease, so NOTIFY jobs.
CREATE FUNCTION perdure._wake_held_back(p_runs text[], p_now float8)
    RETURNS void LANGUAGE plpgsql
AS $$
BEGIN
    PERFORM FROM perdure.jobs
    WHERE run_id = ANY (p_runs) AND kind = 'workflow' AND claimed_by IS NULL AND due_at <= p_now
    LIMIT 1;
    IF FOUND THEN
        PERFORM pg_notify('perdure', 'jobs');
    END IF;
END
$$;

-- World.ack: delete jobs, only those claimed by p_worker.
CREATE FUNCTION perdure._ack(p_ids bigint[], p_worker text, p_now float8)
    RETURNS void LANGUAGE plpgsql
AS $$
DECLARE
    v_runs text[];
BEGIN
    WITH d AS (
        DELETE FROM perdure.jobs WHERE id = ANY (p_ids) AND claimed_by = p_worker
        RETURNING kind, run_id
    )
    SELECT array_agg(d.run_id) FILTER (WHERE d.kind = 'workflow') INTO v_runs FROM d;
    IF v_runs IS NOT NULL THEN
        PERFORM perdure._wake_held_back(v_runs, p_now);
    END IF;
END
$$;

-- Append chunks to one stream at the next dense indexes; returns the last index
-- (-1 for an empty stream). Writers of a stream are serialized by an advisory lock,
-- so the tail read after it is current. A closed stream refuses chunks (PD001)
-- when p_strict, else the call is a no-op (closing twice).
CREATE FUNCTION perdure._stream_append(
    p_run_id text, p_stream text, p_kinds smallint[], p_data bytea[], p_now float8,
    p_strict boolean)
    RETURNS integer LANGUAGE plpgsql
AS $$
DECLARE
    v_idx  integer;
    v_kind smallint;
    v_n    integer := coalesce(cardinality(p_kinds), 0);
    v_eof  integer := array_position(p_kinds, 2::smallint);
BEGIN
    PERFORM pg_advisory_xact_lock(2, hashtext(p_run_id || ':' || p_stream));
    SELECT c.idx, c.kind INTO v_idx, v_kind FROM perdure.chunks c
    WHERE c.run_id = p_run_id AND c.stream = p_stream
    ORDER BY c.idx DESC LIMIT 1;
    IF NOT FOUND THEN
        v_idx := -1;
    END IF;
    IF v_n = 0 THEN
        RETURN v_idx;
    END IF;
    IF v_kind = 2 OR v_eof < v_n THEN
        IF p_strict THEN
            RAISE EXCEPTION 'perdure: stream % of run % is closed', p_stream, p_run_id
                USING ERRCODE = 'PD001';
        END IF;
        RETURN v_idx;
    END IF;
    INSERT INTO perdure.chunks (run_id, stream, idx, kind, data, created_at)
    SELECT p_run_id, p_stream, v_idx + u.o, u.k, coalesce(u.d, ''::bytea), p_now
    FROM unnest(p_kinds, p_data) WITH ORDINALITY AS u(k, d, o);
    PERFORM pg_notify('perdure', 'stream:' || p_run_id || ':' || p_stream);
    RETURN v_idx + v_n;
END
$$;

-- Write EOF on every open stream of a run (a skip scan over its stream names);
-- returns the names of the streams closed.
CREATE FUNCTION perdure._close_streams(p_run_id text, p_now float8)
    RETURNS text[] LANGUAGE plpgsql
AS $$
DECLARE
    v_stream text;
    v_closed text[] := '{}';
BEGIN
    FOR v_stream IN
        WITH RECURSIVE s(stream) AS (
            (SELECT c.stream FROM perdure.chunks c WHERE c.run_id = p_run_id
             ORDER BY c.stream LIMIT 1)
            UNION ALL
            SELECT (SELECT c.stream FROM perdure.chunks c
                    WHERE c.run_id = p_run_id AND c.stream > s.stream
                    ORDER BY c.stream LIMIT 1)
            FROM s WHERE s.stream IS NOT NULL)
        SELECT s.stream FROM s
        WHERE s.stream IS NOT NULL
          AND (SELECT c.kind FROM perdure.chunks c
               WHERE c.run_id = p_run_id AND c.stream = s.stream
               ORDER BY c.idx DESC LIMIT 1) <> 2
    LOOP
        PERFORM perdure._stream_append(p_run_id, v_stream, ARRAY[2]::smallint[],
                                       ARRAY[''::bytea], p_now, false);
        v_closed := v_closed || v_stream;
    END LOOP;
    RETURN v_closed;
END
$$;

-- World.append: see perdure.world.World.append. The events come as parallel arrays
-- (type, correlation id, data JSON text, created_at epoch or NULL for now), with the
-- projection fields the runtime read from each event's data (NULL where they do not
-- apply); the jobs to insert as parallel arrays (see _insert_jobs); ids to ack.
-- Returns the new last seq, the time given to events without one, the job ids and
-- the streams closed (NULL unless p_close_streams).
CREATE FUNCTION perdure.append_events(
    p_run_id text,
    p_types text[],
    p_cids text[],
    p_data text[],
    p_times float8[],
    p_names text[],
    p_tokens text[],
    p_webhooks boolean[],
    p_resume_at float8[],
    p_retry_after float8[],
    p_expected_seq integer,
    p_expected_result_seq integer,
    p_job_kinds text[],
    p_job_runs text[],
    p_job_cids text[],
    p_job_due float8[],
    p_job_claimed_by text[],
    p_job_lease float8[],
    p_ack bigint[],
    p_consumed boolean,
    p_close_streams boolean,
    OUT last_seq integer,
    OUT written_at float8,
    OUT job_ids bigint[],
    OUT closed_streams text[])
    LANGUAGE plpgsql
AS $$
#variable_conflict use_column
DECLARE
    v_now     float8 := perdure.clock();
    v_n       integer := coalesce(cardinality(p_types), 0);
    v_status  text;
    v_last    integer;
    v_result  integer;
    v_started float8;
    v_ended   float8;
    v_ended_now boolean := false;
    v_t       text;
    v_c       text;
    v_at      float8;
    v_seq     integer;
    v_skip    boolean := false;
    v_acked   text[];
BEGIN
    -- Writers of a run are serialized from here to commit (invariant 1).
    SELECT r.status, r.last_seq, r.result_seq, r.started_at, r.completed_at
    INTO v_status, v_last, v_result, v_started, v_ended
    FROM perdure.runs r WHERE r.id = p_run_id
    FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'perdure: run % not found', p_run_id USING ERRCODE = 'PD004';
    END IF;
    IF p_expected_seq IS NOT NULL AND p_expected_seq <> v_last THEN
        RAISE EXCEPTION 'perdure: run % is at seq %, not the expected %', p_run_id, v_last,
            p_expected_seq USING ERRCODE = 'PD002';
    END IF;
    IF p_expected_result_seq IS NOT NULL AND p_expected_result_seq <> v_result THEN
        RAISE EXCEPTION 'perdure: run % has result seq %, not the expected %', p_run_id,
            v_result, p_expected_result_seq USING ERRCODE = 'PD002';
    END IF;

    -- Each event against TRANSITIONS, in order: a guarded write per event type.
    FOR i IN 1 .. v_n LOOP
        IF v_skip THEN  -- the step_started already applied with its step_created
            v_skip := false;
            CONTINUE;
        END IF;
        v_t := p_types[i];
        v_c := p_cids[i];
        v_seq := v_last + i;
        v_at := coalesce(p_times[i], v_now);
        IF v_status IN ('completed', 'failed', 'cancelled') THEN
            RAISE EXCEPTION 'perdure: % refused: run % is %', v_t, p_run_id, v_status
                USING ERRCODE = 'PD001';
        END IF;
        CASE v_t
        WHEN 'step_completed', 'step_failed' THEN
            UPDATE perdure.steps SET status = substr(v_t, 6), completed_at = v_at
            WHERE run_id = p_run_id AND correlation_id = v_c AND status = 'running';
            IF NOT FOUND THEN
                PERFORM perdure._refuse(p_run_id, v_t, 'step', v_c);
            END IF;
            v_result := v_seq;
        WHEN 'step_created' THEN
            -- created and started in one batch (a worker claiming the step it just
            -- made): one row, written running.
            v_skip := coalesce(i < v_n AND p_types[i + 1] = 'step_started'
                               AND p_cids[i + 1] = v_c, false);
            INSERT INTO perdure.steps (run_id, correlation_id, seq, name, status, attempt,
                                       created_at, started_at)
            VALUES (p_run_id, v_c, v_seq, p_names[i],
                    CASE WHEN v_skip THEN 'running' ELSE 'pending' END,
                    CASE WHEN v_skip THEN 1 ELSE 0 END, v_at,
                    CASE WHEN v_skip THEN coalesce(p_times[i + 1], v_now) END)
            ON CONFLICT DO NOTHING;
            IF NOT FOUND THEN
                PERFORM perdure._refuse(p_run_id, v_t, 'step', v_c);
            END IF;
        WHEN 'step_started' THEN
            UPDATE perdure.steps
            SET status = 'running', attempt = attempt + 1, started_at = coalesce(started_at, v_at)
            WHERE run_id = p_run_id AND correlation_id = v_c AND status IN ('pending', 'running');
            IF NOT FOUND THEN
                PERFORM perdure._refuse(p_run_id, v_t, 'step', v_c);
            END IF;
        WHEN 'step_retrying' THEN
            UPDATE perdure.steps SET status = 'pending', retry_after = p_retry_after[i]
            WHERE run_id = p_run_id AND correlation_id = v_c AND status = 'running';
            IF NOT FOUND THEN
                PERFORM perdure._refuse(p_run_id, v_t, 'step', v_c);
            END IF;
        WHEN 'run_started' THEN
            IF v_status <> 'pending' THEN
                RAISE EXCEPTION 'perdure: run_started refused: run % is %', p_run_id, v_status
                    USING ERRCODE = 'PD001';
            END IF;
            v_status := 'running';
            v_started := coalesce(v_started, v_at);
        WHEN 'run_completed', 'run_failed', 'run_cancelled' THEN
            v_status := substr(v_t, 5);
            v_ended := v_at;
            v_ended_now := true;
        WHEN 'wait_created' THEN
            INSERT INTO perdure.waits (run_id, correlation_id, seq, status, resume_at, created_at)
            VALUES (p_run_id, v_c, v_seq, 'waiting', p_resume_at[i], v_at)
            ON CONFLICT DO NOTHING;
            IF NOT FOUND THEN
                PERFORM perdure._refuse(p_run_id, v_t, 'wait', v_c);
            END IF;
        WHEN 'wait_completed' THEN
            UPDATE perdure.waits SET status = 'completed', completed_at = v_at
            WHERE run_id = p_run_id AND correlation_id = v_c AND status = 'waiting';
            IF NOT FOUND THEN
                PERFORM perdure._refuse(p_run_id, v_t, 'wait', v_c);
            END IF;
            v_result := v_seq;
        WHEN 'hook_created' THEN
            INSERT INTO perdure.hooks (run_id, correlation_id, seq, token, status, is_webhook,
                                       created_at)
            VALUES (p_run_id, v_c, v_seq, p_tokens[i], 'active', coalesce(p_webhooks[i], false),
                    v_at)
            ON CONFLICT DO NOTHING;
            IF NOT FOUND THEN
                IF v_c IS NULL OR EXISTS (SELECT 1 FROM perdure.hooks h
                                          WHERE h.run_id = p_run_id AND h.correlation_id = v_c) THEN
                    PERFORM perdure._refuse(p_run_id, v_t, 'hook', v_c);
                END IF;
                RAISE EXCEPTION 'perdure: hook token % is already in use by a live hook',
                    p_tokens[i] USING ERRCODE = 'PD003', DETAIL = p_tokens[i];
            END IF;
        WHEN 'hook_received' THEN
            PERFORM FROM perdure.hooks
            WHERE run_id = p_run_id AND correlation_id = v_c AND status = 'active';
            IF NOT FOUND THEN
                PERFORM perdure._refuse(p_run_id, v_t, 'hook', v_c);
            END IF;
            v_result := v_seq;
        WHEN 'hook_disposed' THEN
            UPDATE perdure.hooks SET status = 'disposed', disposed_at = v_at
            WHERE run_id = p_run_id AND correlation_id = v_c AND status = 'active';
            IF NOT FOUND THEN
                PERFORM perdure._refuse(p_run_id, v_t, 'hook', v_c);
            END IF;
        WHEN 'run_created' THEN
            RAISE EXCEPTION 'perdure: run_created refused: run % exists', p_run_id
                USING ERRCODE = 'PD001';
        ELSE
            RAISE EXCEPTION 'perdure: unknown event type %', v_t USING ERRCODE = 'PD006';
        END CASE;
    END LOOP;

    last_seq := v_last + v_n;
    written_at := v_now;
    IF v_n > 0 THEN
        INSERT INTO perdure.events (run_id, seq, event_type, correlation_id, data, created_at)
        SELECT p_run_id, v_last + u.o, u.t, u.c, u.d, coalesce(u.ts, v_now)
        FROM unnest(p_types, p_cids, p_data, p_times) WITH ORDINALITY AS u(t, c, d, ts, o);
    END IF;
    IF v_n > 0 OR p_consumed THEN
        UPDATE perdure.runs
        SET status = v_status, started_at = v_started, completed_at = v_ended,
            last_seq = v_last + v_n, result_seq = v_result,
            consumed_seq = CASE WHEN p_consumed THEN v_last + v_n ELSE consumed_seq END,
            updated_at = v_now
        WHERE id = p_run_id;
    END IF;

    -- Acks first: a step retried in this batch deletes its old job, then enqueues anew.
    IF p_ack IS NOT NULL THEN
        WITH d AS (DELETE FROM perdure.jobs WHERE id = ANY (p_ack) RETURNING kind, run_id)
        SELECT array_agg(d.run_id) FILTER (WHERE d.kind = 'workflow') INTO v_acked FROM d;
        IF v_acked IS NOT NULL THEN
            PERFORM perdure._wake_held_back(v_acked, v_now);
        END IF;
    END IF;
    IF p_job_kinds IS NOT NULL THEN
        job_ids := perdure._insert_jobs(p_job_kinds, p_job_runs, p_job_cids, p_job_due,
                                        p_job_claimed_by, p_job_lease, v_now);
    ELSE
        job_ids := '{}';
    END IF;
    IF p_close_streams THEN
        closed_streams := perdure._close_streams(p_run_id, v_now);
    END IF;
    IF v_ended_now THEN
        PERFORM pg_notify('perdure', 'run:' || p_run_id);
    END IF;
END
$$;

-- Create a run: its row (pending), its run_created event (seq 1) and a workflow job
-- due now, and NOTIFY jobs. The ONE way runs are made, by World.create_run and by
-- perdure.start_workflow alike, so both write exactly the same rows. With an
-- idempotency key already used it writes nothing and returns that run's id, created
-- false (concurrent starts with one key wait on the unique index: one run).
CREATE FUNCTION perdure._create_run(
    p_workflow text, p_input text, p_run_id text, p_idempotency_key text,
    p_created_at float8, OUT run_id text, OUT created boolean)
    LANGUAGE plpgsql
AS $$
DECLARE
    v_now float8 := perdure.clock();
    v_at  float8 := coalesce(p_created_at, v_now);
BEGIN
    INSERT INTO perdure.runs (id, workflow_name, status, idempotency_key, created_at,
                              updated_at, last_seq)
    VALUES (p_run_id, p_workflow, 'pending', p_idempotency_key, v_at, v_now, 1)
    ON CONFLICT (idempotency_key) DO NOTHING;
    IF NOT FOUND THEN
        SELECT r.id INTO run_id FROM perdure.runs r WHERE r.idempotency_key = p_idempotency_key;
        created := false;
        RETURN;
    END IF;
    INSERT INTO perdure.events (run_id, seq, event_type, correlation_id, data, created_at)
    VALUES (p_run_id, 1, 'run_created', NULL,
            '{"workflow":' || to_json(p_workflow)::text
            || ',"input":' || p_input
            || ',"idempotency_key":' || coalesce(to_json(p_idempotency_key)::text, 'null')
            || '}',
            v_at);
    INSERT INTO perdure.jobs (kind, run_id, due_at, created_at)
    VALUES ('workflow', p_run_id, v_now, v_now);
    PERFORM pg_notify('perdure', 'jobs');
    run_id := p_run_id;
    created := true;
END
$$;

-- World.create_run: _create_run, then the run's row as the World returns it.
CREATE FUNCTION perdure.create_run(
    p_workflow text, p_input text, p_run_id text, p_idempotency_key text,
    p_created_at float8)
    RETURNS TABLE (created boolean, id text, workflow_name text, status text,
                   idempotency_key text, created_at float8, updated_at float8,
                   started_at float8, completed_at float8, last_seq integer,
                   result_seq integer, consumed_seq integer)
    LANGUAGE plpgsql
AS $$
#variable_conflict use_column
DECLARE
    v_id text;
    v_created boolean;
BEGIN
    SELECT c.run_id, c.created INTO v_id, v_created
    FROM perdure._create_run(p_workflow, p_input, p_run_id, p_idempotency_key, p_created_at) c;
    RETURN QUERY
    SELECT v_created, r.id, r.workflow_name, r.status, r.idempotency_key,
           r.created_at, r.updated_at,
           r.started_at, r.completed_at,
           r.last_seq, r.result_seq, r.consumed_seq
    FROM perdure.runs r WHERE r.id = v_id;
END
$$;

-- World.claim: up to p_limit due jobs, unclaimed or with an expired lease, oldest
-- due first, locked with SKIP LOCKED so claimers never wait on each other. A
-- workflow job is handed out only while no other workflow job of its run holds a
-- live lease, and at most one per run: that check is made again under a per-run
-- advisory lock, in a statement whose snapshot is taken after the lock, so two
-- claimers can never both pass it (invariant 5).
CREATE FUNCTION perdure.claim_jobs(p_worker text, p_limit integer, p_lease float8,
                                   p_kinds text[])
    RETURNS TABLE (id bigint, kind text, run_id text, correlation_id text, due_at float8,
                   claimed_by text, lease_expires_at float8, attempts integer)
    LANGUAGE plpgsql
AS $$
#variable_conflict use_column
DECLARE
    v_now  float8 := perdure.clock();
    v_ids  bigint[];
    v_more bigint[];
    v_runs text[];
BEGIN
    -- Expired leases (rare; a worker died), then unclaimed due jobs, in index order.
    SELECT coalesce(array_agg(c.id), '{}') INTO v_ids FROM (
        SELECT j.id FROM perdure.jobs j
        WHERE j.claimed_by IS NOT NULL AND j.lease_expires_at <= v_now AND j.due_at <= v_now
          AND j.kind = ANY (p_kinds)
        ORDER BY j.lease_expires_at
        LIMIT p_limit
        FOR UPDATE SKIP LOCKED) c;
    IF cardinality(v_ids) < p_limit THEN
        SELECT coalesce(array_agg(c.id), '{}') INTO v_more FROM (
            SELECT j.id FROM perdure.jobs j
            WHERE j.claimed_by IS NULL AND j.due_at <= v_now AND j.kind = ANY (p_kinds)
              AND NOT (j.kind = 'workflow' AND EXISTS (
                  SELECT 1 FROM perdure.jobs o
                  WHERE o.run_id = j.run_id AND o.kind = 'workflow' AND o.id <> j.id
                    AND o.claimed_by IS NOT NULL AND o.lease_expires_at > v_now))
            ORDER BY j.due_at, j.id
            LIMIT p_limit - cardinality(v_ids)
            FOR UPDATE SKIP LOCKED) c;
        v_ids := v_ids || v_more;
    END IF;
    IF cardinality(v_ids) = 0 THEN
        RETURN;
    END IF;

    -- Runs of the workflow candidates whose claim lock we get (never waiting).
    SELECT coalesce(array_agg(r.run_id), '{}') INTO v_runs FROM (
        SELECT DISTINCT j.run_id FROM perdure.jobs j
        WHERE j.id = ANY (v_ids) AND j.kind = 'workflow') r
    WHERE pg_try_advisory_xact_lock(1, hashtext(r.run_id));

    RETURN QUERY
    WITH cand AS (
        SELECT j.id, j.kind, j.run_id,
               row_number() OVER (PARTITION BY j.run_id, j.kind ORDER BY j.due_at, j.id) AS nth
        FROM perdure.jobs j WHERE j.id = ANY (v_ids)
    ), claimed AS (
        UPDATE perdure.jobs j
        SET claimed_by = p_worker,
            lease_expires_at = v_now + p_lease,
            attempts = j.attempts + 1
        FROM cand
        WHERE j.id = cand.id
          AND (cand.kind <> 'workflow' OR (
                cand.nth = 1 AND cand.run_id = ANY (v_runs)
                AND NOT EXISTS (
                    SELECT 1 FROM perdure.jobs o
                    WHERE o.run_id = cand.run_id AND o.kind = 'workflow' AND o.id <> cand.id
                      AND o.claimed_by IS NOT NULL AND o.lease_expires_at > v_now)))
        RETURNING j.id, j.kind, j.run_id, j.correlation_id, j.due_at, j.claimed_by,
                  j.lease_expires_at, j.attempts
    )
    SELECT c.id, c.kind, c.run_id, c.correlation_id, c.due_at, c.claimed_by,
           c.lease_expires_at, c.attempts
    FROM claimed c ORDER BY c.due_at, c.id;
END
$$;

-- World.release: give jobs back, claimable at once. A released workflow job whose
-- run already has an unclaimed one folds into it (the unique index allows one).
CREATE FUNCTION perdure.release_jobs(p_worker text, p_ids bigint[])
    RETURNS void LANGUAGE plpgsql
AS $$
DECLARE
    v_now float8 := perdure.clock();
    v_job record;
BEGIN
    FOR v_job IN
        SELECT j.id, j.kind, j.run_id FROM perdure.jobs j
        WHERE j.id = ANY (p_ids) AND j.claimed_by = p_worker
        ORDER BY j.id FOR UPDATE
    LOOP
        IF v_job.kind = 'workflow' THEN
            UPDATE perdure.jobs SET due_at = least(due_at, v_now)
            WHERE run_id = v_job.run_id AND kind = 'workflow' AND claimed_by IS NULL;
            IF FOUND THEN
                DELETE FROM perdure.jobs WHERE id = v_job.id;
                CONTINUE;
            END IF;
        END IF;
        BEGIN
            UPDATE perdure.jobs
            SET claimed_by = NULL, lease_expires_at = NULL, due_at = least(due_at, v_now)
            WHERE id = v_job.id;
        EXCEPTION WHEN unique_violation THEN
            -- an unclaimed continuation was enqueued meanwhile: fold into it
            UPDATE perdure.jobs SET due_at = least(due_at, v_now)
            WHERE run_id = v_job.run_id AND kind = 'workflow' AND claimed_by IS NULL;
            DELETE FROM perdure.jobs WHERE id = v_job.id;
        END;
    END LOOP;
    PERFORM pg_notify('perdure', 'jobs');
END
$$;

-- World.write_chunks / World.close_stream.
CREATE FUNCTION perdure.write_chunks(p_run_id text, p_stream text, p_kinds smallint[],
                                     p_data bytea[])
    RETURNS integer LANGUAGE plpgsql
AS $$
BEGIN
    PERFORM FROM perdure.runs WHERE id = p_run_id;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'perdure: run % not found', p_run_id USING ERRCODE = 'PD004';
    END IF;
    RETURN perdure._stream_append(p_run_id, p_stream, p_kinds, p_data, perdure.clock(), true);
END
$$;

CREATE FUNCTION perdure.close_stream(p_run_id text, p_stream text)
    RETURNS void LANGUAGE plpgsql
AS $$
BEGIN
    PERFORM FROM perdure.runs WHERE id = p_run_id;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'perdure: run % not found', p_run_id USING ERRCODE = 'PD004';
    END IF;
    PERFORM perdure._stream_append(p_run_id, p_stream, ARRAY[2]::smallint[], ARRAY[''::bytea],
                                   perdure.clock(), false);
    -- wake readers even when it was closed already (idempotent close)
    PERFORM pg_notify('perdure', 'stream:' || p_run_id || ':' || p_stream);
END
$$;

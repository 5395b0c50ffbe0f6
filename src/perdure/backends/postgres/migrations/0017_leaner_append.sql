-- A leaner append: four writes of a sequential step made cheaper or dropped. A
-- sequential step costs the server 723 k instructions against 867 k (callgrind,
-- side by side, docs/performance.md).
--
-- 1. A sequential chain's job is its lease, not rewritten at each step. 0016
--    updated the job row an append acks to be the next step's (correlation id,
--    lease, due time): a non-HOT update with three index entries, 137 k of a
--    step's instructions. Now the first carry-on clears the job's correlation id
--    (it no longer names one step: it is the lease of the chain this worker runs)
--    and every carry-on after it only checks that the job is still this worker's
--    (a lost lease falls back, as before, to a new job for the new step). The
--    heartbeat renews the lease. A worker that takes over such a job (its holder
--    died, or released it at shutdown) re-enqueues the run's unfinished steps, as
--    the recovery sweep would (Worker._take_over_chain).
-- 2. events_creation goes. Invariant 3 (a creation event is unique per run,
--    correlation id and type) holds without it: every creation event is written
--    with its entity's row in the same transaction, and each entity's primary key
--    is unique on that key (runs.id; steps, waits and hooks on (run_id,
--    correlation_id)). append_events refuses a duplicate before it writes any
--    event, and nothing reads through the index. Every event insert paid an entry
--    in it (one per step) and the check of its predicate.
-- 3. The run row's update finds the row by the ctid its SELECT ... FOR UPDATE
--    returned: the row is locked, so its ctid cannot change before this
--    transaction updates it, and a TID scan needs no index descent.
-- 4. A step's row is inserted without ON CONFLICT DO NOTHING (a speculative
--    insertion). A second step_created of the same step violates steps_pkey
--    (23505), which aborts the append as a refusal does; it reaches the caller
--    as EntityConflictError, named as a refusal (_db.translate).
--
-- The rest of append_events is as in 0016.

DROP INDEX perdure.events_creation;

CREATE OR REPLACE FUNCTION perdure.append_events(
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
    SET plan_cache_mode = force_generic_plan SET enable_seqscan = off
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
    v_created text[];  -- the steps this call creates
    v_wake    boolean;
    v_carried boolean := false;  -- the acked job carries on as the new step's
    v_job_cid text;     -- the carried-on job's: NULL once it is a chain's lease
    v_row     tid;      -- the run row's, locked: its update needs no index scan
BEGIN
    -- Writers of a run are serialized from here to commit (invariant 1).
    SELECT r.ctid, r.status, r.last_seq, r.result_seq, r.started_at, r.completed_at
    INTO v_row, v_status, v_last, v_result, v_started, v_ended
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
            -- made): one row, written running. A plain insert: a second step_created
            -- of this step violates steps_pkey (23505, EntityConflictError), which
            -- aborts the append like a refusal does.
            v_skip := coalesce(i < v_n AND p_types[i + 1] = 'step_started'
                               AND p_cids[i + 1] = v_c, false);
            INSERT INTO perdure.steps (run_id, correlation_id, seq, name, status, attempt,
                                       created_at, started_at)
            VALUES (p_run_id, v_c, v_seq, p_names[i],
                    CASE WHEN v_skip THEN 'running' ELSE 'pending' END,
                    CASE WHEN v_skip THEN 1 ELSE 0 END, v_at,
                    CASE WHEN v_skip THEN coalesce(p_times[i + 1], v_now) END);
            v_created := v_created || v_c;
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
        WHERE ctid = v_row;
    END IF;

    -- A sequential step's job carries on as the next step's (same worker, same run),
    -- as the chain's lease: checked to be still this worker's, not written again
    -- once its correlation id is cleared (the first step of the chain). Whoever
    -- takes such a job over re-enqueues the run's unfinished steps (Worker).
    IF cardinality(p_ack) = 1 AND cardinality(p_job_kinds) = 1 AND p_job_kinds[1] = 'step'
       AND p_job_claimed_by[1] IS NOT NULL AND p_job_cids[1] = ANY (v_created) THEN
        SELECT j.correlation_id INTO v_job_cid FROM perdure.jobs j
        WHERE j.id = p_ack[1] AND j.kind = 'step' AND j.run_id = p_job_runs[1]
          AND j.claimed_by = p_job_claimed_by[1];
        v_carried := FOUND;
        IF v_carried THEN
            job_ids := ARRAY[p_ack[1]];
            IF v_job_cid IS NOT NULL THEN
                UPDATE perdure.jobs SET correlation_id = NULL WHERE id = p_ack[1];
            END IF;
        END IF;
    END IF;
    -- Acks first: a step retried in this batch deletes its old job, then enqueues anew.
    IF p_ack IS NOT NULL AND NOT v_carried THEN
        WITH d AS (DELETE FROM perdure.jobs WHERE id = ANY (p_ack) RETURNING kind, run_id)
        SELECT array_agg(d.run_id) FILTER (WHERE d.kind = 'workflow') INTO v_acked FROM d;
        IF v_acked IS NOT NULL AND EXISTS (SELECT FROM perdure._held_back(v_acked, v_now)) THEN
            PERFORM pg_notify('perdure', 'jobs');
        END IF;
    END IF;
    -- Jobs of the steps this call creates: no ON CONFLICT, such a step has no job
    -- yet (its step_created is unique, invariant 3, and its job is made with it).
    IF v_carried THEN
        NULL;  -- the acked job is the new step's now
    ELSIF cardinality(p_job_kinds) = 1 AND p_job_kinds[1] = 'step'
       AND p_job_cids[1] = ANY (v_created) THEN
        -- one step (a sequential workflow's next): a plain insert
        INSERT INTO perdure.jobs (kind, run_id, correlation_id, due_at, claimed_by,
                                  lease_expires_at, attempts, created_at)
        VALUES ('step', p_job_runs[1], p_job_cids[1], coalesce(p_job_due[1], v_now),
                p_job_claimed_by[1],
                CASE WHEN p_job_claimed_by[1] IS NULL THEN NULL
                     ELSE v_now + coalesce(p_job_lease[1], 30) END,
                CASE WHEN p_job_claimed_by[1] IS NULL THEN 0 ELSE 1 END, v_now)
        RETURNING ARRAY[id], claimed_by IS NULL AND due_at <= v_now INTO job_ids, v_wake;
        IF v_wake THEN
            PERFORM pg_notify('perdure', 'jobs');
        END IF;
    ELSIF 'step' = ALL (p_job_kinds) AND p_job_cids <@ v_created THEN
        -- a fan-out: one INSERT ... SELECT, ids returned in the order of the arrays
        WITH ins AS (
            INSERT INTO perdure.jobs (kind, run_id, correlation_id, due_at, claimed_by,
                                      lease_expires_at, attempts, created_at)
            SELECT 'step', u.r, u.c, coalesce(u.due, v_now), u.by,
                   CASE WHEN u.by IS NULL THEN NULL ELSE v_now + coalesce(u.lease, 30) END,
                   CASE WHEN u.by IS NULL THEN 0 ELSE 1 END, v_now
            FROM unnest(p_job_runs, p_job_cids, p_job_due, p_job_claimed_by, p_job_lease)
                AS u(r, c, due, by, lease)
            RETURNING id, run_id, correlation_id, claimed_by, due_at
        )
        SELECT coalesce(array_agg(ins.id ORDER BY u.o), '{}'),  -- '{}' as _insert_jobs
               coalesce(bool_or(ins.claimed_by IS NULL AND ins.due_at <= v_now), false)
        INTO job_ids, v_wake
        FROM ins JOIN unnest(p_job_runs, p_job_cids) WITH ORDINALITY AS u(r, c, o)
            ON u.r = ins.run_id AND u.c = ins.correlation_id;
        IF v_wake THEN
            PERFORM pg_notify('perdure', 'jobs');
        END IF;
    ELSIF p_job_kinds IS NOT NULL THEN
        job_ids := perdure._insert_jobs(p_job_kinds, p_job_runs, p_job_cids, p_job_due,
                                        p_job_claimed_by, p_job_lease, v_now);
    ELSE
        job_ids := '{}';
    END IF;
    IF p_close_streams THEN
        -- most runs write no stream: one probe of the chunks' key before the walk
        IF EXISTS (SELECT FROM perdure.chunks c WHERE c.run_id = p_run_id) THEN
            closed_streams := perdure._close_streams(p_run_id, v_now);
        ELSE
            closed_streams := '{}';
        END IF;
    END IF;
    IF v_ended_now THEN
        PERFORM pg_notify('perdure_runs', 'run:' || p_run_id);
    END IF;
END
$$;

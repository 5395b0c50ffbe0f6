-- The sequential step's own function: perdure.append_next_step, with scalar
-- arguments and straight-line code, for the append a sequential workflow makes
-- at every step (a step's end, its successor created and started by the worker
-- that acks the ended step's job: EventLog.append picks it). A sequential step
-- costs the server 492 k instructions against 707 k through append_events
-- (callgrind, side by side, docs/performance.md).
--
-- Why it is cheaper: PL/pgSQL compiles each expression it evaluates once per
-- transaction, and every step is a transaction of its own; append_events'
-- general loop evaluates some forty (array subscripts, the CASE on event types,
-- the branches between acks and job inserts), each looked up in the catalog
-- caches and built anew, and its statements read their values out of arrays.
-- Here the values are plain arguments and the few checks are three IFs.
--
-- It writes what append_events writes for that batch, row for row (0017's chain
-- lease included). Whenever one of its checks fails before anything is written
-- (the run is not running, an expected seq differs, the acked job is not this
-- worker's, the ended step is not running), it hands the same batch to
-- append_events, which refuses it or takes its general path exactly as it would
-- have.

CREATE FUNCTION perdure.append_next_step(
    p_run_id text,
    p_expected_seq integer,
    p_expected_result_seq integer,
    p_done_type text,       -- step_completed or step_failed
    p_done_cid text,
    p_done_data text,
    p_done_at float8,
    p_cid text,             -- the next step: created and started
    p_name text,
    p_created_data text,
    p_started_data text,
    p_created_at float8,
    p_started_at float8,
    p_worker text,          -- its job: this worker's, with this lease
    p_lease float8,
    p_ack bigint,           -- the ended step's job
    p_consumed boolean,
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
    v_row     tid;
    v_status  text;
    v_last    integer;
    v_result  integer;
    v_job_cid text;
BEGIN
    -- Writers of a run are serialized from here to commit (invariant 1).
    SELECT r.ctid, r.status, r.last_seq, r.result_seq INTO v_row, v_status, v_last, v_result
    FROM perdure.runs r WHERE r.id = p_run_id
    FOR UPDATE;
    IF v_status = 'running' AND v_last = coalesce(p_expected_seq, v_last)
       AND v_result = coalesce(p_expected_result_seq, v_result) THEN
        SELECT j.correlation_id INTO v_job_cid FROM perdure.jobs j
        WHERE j.id = p_ack AND j.kind = 'step' AND j.run_id = p_run_id
          AND j.claimed_by = p_worker;
        IF FOUND THEN
            UPDATE perdure.steps
            SET status = substr(p_done_type, 6), completed_at = coalesce(p_done_at, v_now)
            WHERE run_id = p_run_id AND correlation_id = p_done_cid AND status = 'running';
        END IF;
        IF FOUND THEN  -- nothing can refuse the batch now but a duplicate step (23505)
            INSERT INTO perdure.steps (run_id, correlation_id, seq, name, status, attempt,
                                       created_at, started_at)
            VALUES (p_run_id, p_cid, v_last + 2, p_name, 'running', 1,
                    coalesce(p_created_at, v_now), coalesce(p_started_at, v_now));
            INSERT INTO perdure.events (run_id, seq, event_type, correlation_id, data,
                                        created_at)
            VALUES (p_run_id, v_last + 1, p_done_type, p_done_cid, p_done_data,
                    coalesce(p_done_at, v_now)),
                   (p_run_id, v_last + 2, 'step_created', p_cid, p_created_data,
                    coalesce(p_created_at, v_now)),
                   (p_run_id, v_last + 3, 'step_started', p_cid, p_started_data,
                    coalesce(p_started_at, v_now));
            UPDATE perdure.runs
            SET last_seq = v_last + 3, result_seq = v_last + 1, updated_at = v_now,
                consumed_seq = CASE WHEN p_consumed THEN v_last + 3 ELSE consumed_seq END
            WHERE ctid = v_row;
            IF v_job_cid IS NOT NULL THEN  -- the job becomes the chain's lease (0017)
                UPDATE perdure.jobs SET correlation_id = NULL WHERE id = p_ack;
            END IF;
            last_seq := v_last + 3;
            written_at := v_now;
            job_ids := ARRAY[p_ack];
            RETURN;
        END IF;
    END IF;
    -- Anything else: the same batch through the general path, which refuses it
    -- (unknown or ended run, stale seq, illegal step transition) or writes it with
    -- a job of its own (the acked one was not this worker's).
    SELECT a.last_seq, a.written_at, a.job_ids, a.closed_streams
    INTO last_seq, written_at, job_ids, closed_streams
    FROM perdure.append_events(
        p_run_id, ARRAY[p_done_type, 'step_created', 'step_started'],
        ARRAY[p_done_cid, p_cid, p_cid], ARRAY[p_done_data, p_created_data, p_started_data],
        ARRAY[p_done_at, p_created_at, p_started_at], ARRAY[NULL, p_name, NULL],
        NULL, NULL, NULL, NULL, p_expected_seq, p_expected_result_seq,
        ARRAY['step'], ARRAY[p_run_id], ARRAY[p_cid], ARRAY[NULL::float8], ARRAY[p_worker],
        ARRAY[p_lease], ARRAY[p_ack], p_consumed, false) a;
END
$$;

-- A run that a worker starts and ends in its first activation (a workflow that
-- returns or raises before its first step, wait or hook) has a function of its
-- own too: perdure.create_run_ended, for the batch run_started, then
-- run_completed or run_failed, its streams closed. As create_run_first_step
-- (0026) does for a run's first step: the run row is inserted as the batch leaves
-- it, ended, instead of inserted pending and updated through append_events'
-- general loop; the three events go in one INSERT; the answer is the function's
-- own values.
--
-- Same rows as create_run_started writes for that batch, and the same
-- notification (the run's end). Its streams: a run being created has no chunks
-- (write_chunks needs the run), so there are none to close.

CREATE FUNCTION perdure.create_run_ended(
    p_workflow text, p_input text, p_run_id text, p_idempotency_key text,
    p_created_at float8,
    p_run_data text,        -- run_started
    p_run_at float8,
    p_end_type text,        -- run_completed or run_failed
    p_end_data text,
    p_end_at float8,
    OUT created boolean, OUT last_seq integer, OUT written_at float8, OUT job_ids bigint[],
    OUT closed_streams text[], OUT id text, OUT workflow_name text, OUT status text,
    OUT idempotency_key text, OUT created_at float8, OUT updated_at float8,
    OUT started_at float8, OUT completed_at float8, OUT r_last_seq integer,
    OUT result_seq integer, OUT consumed_seq integer)
    LANGUAGE plpgsql
    SET plan_cache_mode = force_generic_plan SET enable_seqscan = off
AS $$
#variable_conflict use_column
DECLARE
    v_now     float8 := perdure.clock();
    v_at      float8 := coalesce(p_created_at, v_now);
    v_started float8 := coalesce(p_run_at, v_now);
    v_ended   float8 := coalesce(p_end_at, v_now);
    v_status  text := substr(p_end_type, 5);
BEGIN
    IF p_end_type NOT IN ('run_completed', 'run_failed') THEN
        RAISE EXCEPTION 'perdure: create_run_ended cannot end a run with %', p_end_type
            USING ERRCODE = 'PD006';
    END IF;
    INSERT INTO perdure.runs (id, workflow_name, status, idempotency_key, created_at,
                              updated_at, started_at, completed_at, last_seq, result_seq,
                              consumed_seq)
    VALUES (p_run_id, p_workflow, v_status, p_idempotency_key, v_at, v_now, v_started,
            v_ended, 3, 0, 3)
    ON CONFLICT (idempotency_key) DO NOTHING;
    IF NOT FOUND THEN  -- the key is used: that run, nothing written
        SELECT false, r.id, r.workflow_name, r.status, r.idempotency_key, r.created_at,
               r.updated_at, r.started_at, r.completed_at, r.last_seq, r.result_seq,
               r.consumed_seq
        INTO created, id, workflow_name, status, idempotency_key, created_at, updated_at,
             started_at, completed_at, r_last_seq, result_seq, consumed_seq
        FROM perdure.runs r WHERE r.idempotency_key = p_idempotency_key;
        RETURN;
    END IF;
    INSERT INTO perdure.events (run_id, seq, event_type, correlation_id, data, created_at)
    VALUES (p_run_id, 1, 'run_created', NULL,
            perdure._run_created_data(p_workflow, p_input, p_idempotency_key), v_at),
           (p_run_id, 2, 'run_started', NULL, p_run_data, v_started),
           (p_run_id, 3, p_end_type, NULL, p_end_data, v_ended);
    PERFORM pg_notify('perdure_runs', 'run:' || p_run_id);
    created := true;
    last_seq := 3;
    written_at := v_now;
    job_ids := '{}';
    closed_streams := '{}';
    id := p_run_id;
    workflow_name := p_workflow;
    status := v_status;
    idempotency_key := p_idempotency_key;
    created_at := v_at;
    updated_at := v_now;
    started_at := v_started;
    completed_at := v_ended;
    r_last_seq := 3;
    result_seq := 0;
    consumed_seq := 3;
END
$$;

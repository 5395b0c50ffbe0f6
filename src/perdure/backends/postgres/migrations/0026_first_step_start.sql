-- A run that a worker starts with its first step has a function of its own:
-- perdure.create_run_first_step, for create_run_started's commonest batch:
-- run_started, one step created and started, that step's job claimed by the
-- starting worker. Every workflow that begins with a step, started on a worker's
-- own process (Engine.start), starts this way.
--
-- Why: create_run_started (0025) makes the run pending through _create_run, then
-- hands the batch to append_events, which locks the row it just wrote, walks its
-- general loop (PL/pgSQL builds each of its expressions anew in every transaction)
-- and updates the run to running; then the run row is read back by a query. Here
-- the run row is inserted as the batch leaves it (running, at seq 4), so it has
-- no second version to write, index and WAL-log; the four events go in one INSERT;
-- the answer is the function's own values. Same rows, row for row, as
-- create_run_started writes for that batch; no notification either way (the job
-- is claimed).
--
-- A used idempotency key answers as create_run_started does: created false, the
-- existing run, nothing written. EventLog.create_run_started picks the function;
-- any other batch goes to create_run_started.

-- run_created's data as _create_run (0008) writes it, for the functions that make a
-- run without it (0026, 0027). A SQL function of one expression: the planner
-- inlines it into the statement that calls it, so it costs no call.
CREATE FUNCTION perdure._run_created_data(p_workflow text, p_input text,
                                          p_idempotency_key text) RETURNS text
    LANGUAGE sql STABLE
AS $$
    SELECT '{"workflow":' || to_json(p_workflow)::text
           || ',"input":' || p_input
           || ',"idempotency_key":' || coalesce(to_json(p_idempotency_key)::text, 'null')
           || '}'
$$;

CREATE FUNCTION perdure.create_run_first_step(
    p_workflow text, p_input text, p_run_id text, p_idempotency_key text,
    p_created_at float8,
    p_run_data text,        -- run_started
    p_run_at float8,
    p_cid text,             -- the first step: created and started (in
    p_name text,            -- append_next_step's order)
    p_created_data text,
    p_started_data text,
    p_step_created_at float8,
    p_started_at float8,
    p_worker text,          -- its job: this worker's, with this lease
    p_lease float8,
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
BEGIN
    INSERT INTO perdure.runs (id, workflow_name, status, idempotency_key, created_at,
                              updated_at, started_at, last_seq, result_seq, consumed_seq)
    VALUES (p_run_id, p_workflow, 'running', p_idempotency_key, v_at, v_now, v_started,
            4, 0, 4)
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
           (p_run_id, 3, 'step_created', p_cid, p_created_data,
            coalesce(p_step_created_at, v_now)),
           (p_run_id, 4, 'step_started', p_cid, p_started_data, coalesce(p_started_at, v_now));
    -- a plain insert, as append_events': the run is new, so is its step
    INSERT INTO perdure.steps (run_id, correlation_id, seq, name, status, attempt,
                               created_at, started_at)
    VALUES (p_run_id, p_cid, 3, p_name, 'running', 1, coalesce(p_step_created_at, v_now),
            coalesce(p_started_at, v_now));
    INSERT INTO perdure.jobs (kind, run_id, correlation_id, due_at, claimed_by,
                              lease_expires_at, attempts, created_at)
    VALUES ('step', p_run_id, p_cid, v_now, p_worker, v_now + coalesce(p_lease, 30), 1, v_now)
    RETURNING ARRAY[jobs.id] INTO job_ids;
    created := true;
    last_seq := 4;
    written_at := v_now;
    id := p_run_id;
    workflow_name := p_workflow;
    status := 'running';
    idempotency_key := p_idempotency_key;
    created_at := v_at;
    updated_at := v_now;
    started_at := v_started;
    r_last_seq := 4;
    result_seq := 0;
    consumed_seq := 4;
END
$$;

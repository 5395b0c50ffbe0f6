-- A worker that starts a run it will execute itself inserts the run's workflow job
-- already claimed (World.create_run_claimed): no claim round trip, no NOTIFY jobs.
-- _create_run stays the ONE way runs are made; it gains the claim (NULL: an
-- unclaimed job, as before) and returns the job's id. Its return type changes,
-- hence DROP and CREATE (callers name it at run time, nothing depends on it).

DROP FUNCTION perdure.create_run(text, text, text, text, float8);
DROP FUNCTION perdure._create_run(text, text, text, text, float8);

CREATE FUNCTION perdure._create_run(
    p_workflow text, p_input text, p_run_id text, p_idempotency_key text,
    p_created_at float8, p_claimed_by text DEFAULT NULL, p_lease float8 DEFAULT NULL,
    OUT run_id text, OUT created boolean, OUT job_id bigint)
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
    IF p_claimed_by IS NULL THEN
        INSERT INTO perdure.jobs (kind, run_id, due_at, created_at)
        VALUES ('workflow', p_run_id, v_now, v_now)
        RETURNING id INTO job_id;
        PERFORM pg_notify('perdure', 'jobs');
    ELSE
        INSERT INTO perdure.jobs (kind, run_id, due_at, claimed_by, lease_expires_at,
                                  attempts, created_at)
        VALUES ('workflow', p_run_id, v_now, p_claimed_by, v_now + coalesce(p_lease, 30), 1,
                v_now)
        RETURNING id INTO job_id;
    END IF;
    run_id := p_run_id;
    created := true;
END
$$;

-- World.create_run / World.create_run_claimed: _create_run, then the run's row as
-- the World returns it, whether it was created, and its job (NULL when not created).
CREATE FUNCTION perdure.create_run(
    p_workflow text, p_input text, p_run_id text, p_idempotency_key text,
    p_created_at float8, p_claimed_by text DEFAULT NULL, p_lease float8 DEFAULT NULL)
    RETURNS TABLE (created boolean, job_id bigint, id text, workflow_name text, status text,
                   idempotency_key text, created_at float8, updated_at float8,
                   started_at float8, completed_at float8, last_seq integer,
                   result_seq integer, consumed_seq integer)
    LANGUAGE plpgsql
AS $$
#variable_conflict use_column
DECLARE
    v_id text;
    v_created boolean;
    v_job bigint;
BEGIN
    SELECT c.run_id, c.created, c.job_id INTO v_id, v_created, v_job
    FROM perdure._create_run(p_workflow, p_input, p_run_id, p_idempotency_key, p_created_at,
                             p_claimed_by, p_lease) c;
    RETURN QUERY
    SELECT v_created, v_job, r.id, r.workflow_name, r.status, r.idempotency_key,
           r.created_at, r.updated_at,
           r.started_at, r.completed_at,
           r.last_seq, r.result_seq, r.consumed_seq
    FROM perdure.runs r WHERE r.id = v_id;
END
$$;

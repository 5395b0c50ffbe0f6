-- A run created with its first activation (create_run_started) needs no workflow
-- job. 0007 made one claimed by nobody and acked it in the same transaction: an
-- insert and a delete on the queue, and a look for held-back jobs, on every local
-- start. _create_run, still the ONE way runs are made, gains p_job: false inserts
-- no job (job_id NULL). Adding a parameter changes its signature, hence DROP and
-- CREATE (callers name it at run time; the defaults keep their calls as they were).

DROP FUNCTION perdure._create_run(text, text, text, text, float8, text, float8);

CREATE FUNCTION perdure._create_run(
    p_workflow text, p_input text, p_run_id text, p_idempotency_key text,
    p_created_at float8, p_claimed_by text DEFAULT NULL, p_lease float8 DEFAULT NULL,
    p_job boolean DEFAULT true,
    OUT run_id text, OUT created boolean, OUT job_id bigint)
    LANGUAGE plpgsql
    SET plan_cache_mode = force_generic_plan SET enable_seqscan = off
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
    IF NOT p_job THEN
        NULL;  -- the caller appends the run's first activation in this transaction
    ELSIF p_claimed_by IS NULL THEN
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

CREATE OR REPLACE FUNCTION perdure.create_run_started(
    p_workflow text, p_input text, p_run_id text, p_idempotency_key text,
    p_created_at float8,
    p_types text[], p_cids text[], p_data text[], p_times float8[], p_names text[],
    p_tokens text[], p_webhooks boolean[], p_resume_at float8[], p_retry_after float8[],
    p_job_kinds text[], p_job_runs text[], p_job_cids text[], p_job_due float8[],
    p_job_claimed_by text[], p_job_lease float8[], p_close_streams boolean)
    RETURNS TABLE (created boolean, last_seq integer, written_at float8, job_ids bigint[],
                   closed_streams text[], id text, workflow_name text, status text,
                   idempotency_key text, created_at float8, updated_at float8,
                   started_at float8, completed_at float8, r_last_seq integer,
                   result_seq integer, consumed_seq integer)
    LANGUAGE plpgsql
    SET plan_cache_mode = force_generic_plan SET enable_seqscan = off
AS $$
#variable_conflict use_column
DECLARE
    v_id      text;
    v_created boolean;
    v_last    integer;
    v_at      float8;
    v_jobs    bigint[];
    v_closed  text[];
BEGIN
    SELECT c.run_id, c.created INTO v_id, v_created
    FROM perdure._create_run(p_workflow, p_input, p_run_id, p_idempotency_key, p_created_at,
                             NULL, NULL, false) c;
    IF v_created THEN
        SELECT a.last_seq, a.written_at, a.job_ids, a.closed_streams
        INTO v_last, v_at, v_jobs, v_closed
        FROM perdure.append_events(
            p_run_id, p_types, p_cids, p_data, p_times, p_names, p_tokens, p_webhooks,
            p_resume_at, p_retry_after, 1, NULL,
            p_job_kinds, p_job_runs, p_job_cids, p_job_due, p_job_claimed_by, p_job_lease,
            NULL, true, p_close_streams) a;
    END IF;
    RETURN QUERY
    SELECT v_created, v_last, v_at, v_jobs, v_closed, r.id, r.workflow_name, r.status,
           r.idempotency_key, r.created_at, r.updated_at, r.started_at, r.completed_at,
           r.last_seq, r.result_seq, r.consumed_seq
    FROM perdure.runs r WHERE r.id = v_id;
END
$$;

-- World.create_run_started: a worker that starts a run it executes writes the run
-- and its first activation in ONE transaction (one commit instead of two). The run
-- is made by _create_run, the ONE way runs are made, with a workflow job claimed by
-- nobody real; the append that follows acks that job in the same transaction, so
-- no job is ever visible. With an idempotency key already used nothing is written:
-- created is false and the row is the existing run's.
CREATE FUNCTION perdure.create_run_started(
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
    v_job     bigint;
    v_last    integer;
    v_at      float8;
    v_jobs    bigint[];
    v_closed  text[];
BEGIN
    SELECT c.run_id, c.created, c.job_id INTO v_id, v_created, v_job
    FROM perdure._create_run(p_workflow, p_input, p_run_id, p_idempotency_key, p_created_at,
                             '', 30) c;
    IF v_created THEN
        SELECT a.last_seq, a.written_at, a.job_ids, a.closed_streams
        INTO v_last, v_at, v_jobs, v_closed
        FROM perdure.append_events(
            p_run_id, p_types, p_cids, p_data, p_times, p_names, p_tokens, p_webhooks,
            p_resume_at, p_retry_after, 1, NULL,
            p_job_kinds, p_job_runs, p_job_cids, p_job_due, p_job_claimed_by, p_job_lease,
            ARRAY[v_job], true, p_close_streams) a;
    END IF;
    RETURN QUERY
    SELECT v_created, v_last, v_at, v_jobs, v_closed, r.id, r.workflow_name, r.status,
           r.idempotency_key, r.created_at, r.updated_at, r.started_at, r.completed_at,
           r.last_seq, r.result_seq, r.consumed_seq
    FROM perdure.runs r WHERE r.id = v_id;
END
$$;

-- create_run_started calls _create_run and append_events as expressions, not as
-- queries, as append_many does since 0022: every run started on a worker's own
-- process (Engine.start) goes through it.
--
-- 0007 called both as SELECT ... FROM perdure.f(...): a query each, which PL/pgSQL
-- runs through the executor (a function scan set up and torn down, a tuple store
-- for its one row). An assignment of the call is a simple expression, which
-- PL/pgSQL evaluates directly. The rows written and the answer are as before.
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
    v_made   record;  -- _create_run's answer
    v_out    record;  -- append_events' answer
    v_last   integer;
    v_at     float8;
    v_jobs   bigint[];
    v_closed text[];
BEGIN
    v_made := perdure._create_run(p_workflow, p_input, p_run_id, p_idempotency_key,
                                  p_created_at, NULL, NULL, false);
    IF v_made.created THEN
        v_out := perdure.append_events(
            p_run_id, p_types, p_cids, p_data, p_times, p_names, p_tokens, p_webhooks,
            p_resume_at, p_retry_after, 1, NULL,
            p_job_kinds, p_job_runs, p_job_cids, p_job_due, p_job_claimed_by, p_job_lease,
            NULL, true, p_close_streams);
        v_last := v_out.last_seq;
        v_at := v_out.written_at;
        v_jobs := v_out.job_ids;
        v_closed := v_out.closed_streams;
    END IF;
    RETURN QUERY
    SELECT v_made.created, v_last, v_at, v_jobs, v_closed, r.id, r.workflow_name, r.status,
           r.idempotency_key, r.created_at, r.updated_at, r.started_at, r.completed_at,
           r.last_seq, r.result_seq, r.consumed_seq
    FROM perdure.runs r WHERE r.id = v_made.run_id;
END
$$;

-- append_many calls append_events as an expression, not as a query: a batch's
-- server instructions fell by 126 k per run (a scratch callgrind script: ten runs
-- created, claimed and appended to together, 1,304 k against 1,178 k per run).
--
-- 0009 called it as RETURN QUERY SELECT ... FROM perdure.append_events(...): a
-- query per request, which PL/pgSQL runs through the executor (a function scan
-- set up and torn down, a tuple store for its one row). An assignment of the call
-- is a simple expression, which PL/pgSQL evaluates directly. The requests, their
-- order, the rows written and the answers are as before.
CREATE OR REPLACE FUNCTION perdure.append_many(
    p_run_ids text[], p_event_counts integer[],
    p_types text[], p_cids text[], p_data text[], p_times float8[], p_names text[],
    p_tokens text[], p_webhooks boolean[], p_resume_at float8[], p_retry_after float8[],
    p_expected_seq integer[], p_expected_result_seq integer[],
    p_job_counts integer[], p_job_kinds text[], p_job_runs text[], p_job_cids text[],
    p_job_due float8[], p_job_claimed_by text[], p_job_lease float8[],
    p_ack_counts integer[], p_ack bigint[], p_consumed boolean[], p_close_streams boolean[])
    RETURNS TABLE (last_seq integer, written_at float8, job_ids bigint[],
                   closed_streams text[])
    LANGUAGE plpgsql
    SET plan_cache_mode = force_generic_plan SET enable_seqscan = off
AS $$
#variable_conflict use_column
DECLARE
    v_e  integer := 0;  -- events, jobs and acks of the requests before this one
    v_j  integer := 0;
    v_a  integer := 0;
    v_ne integer;
    v_nj integer;
    v_na integer;
    v_out record;  -- append_events' answer to one request
BEGIN
    FOR i IN 1 .. coalesce(cardinality(p_run_ids), 0) LOOP
        v_ne := p_event_counts[i];
        v_nj := p_job_counts[i];
        v_na := p_ack_counts[i];
        v_out := perdure.append_events(
            p_run_ids[i],
            p_types[v_e + 1 : v_e + v_ne], p_cids[v_e + 1 : v_e + v_ne],
            p_data[v_e + 1 : v_e + v_ne], p_times[v_e + 1 : v_e + v_ne],
            p_names[v_e + 1 : v_e + v_ne], p_tokens[v_e + 1 : v_e + v_ne],
            p_webhooks[v_e + 1 : v_e + v_ne], p_resume_at[v_e + 1 : v_e + v_ne],
            p_retry_after[v_e + 1 : v_e + v_ne],
            p_expected_seq[i], p_expected_result_seq[i],
            CASE WHEN v_nj > 0 THEN p_job_kinds[v_j + 1 : v_j + v_nj] END,
            CASE WHEN v_nj > 0 THEN p_job_runs[v_j + 1 : v_j + v_nj] END,
            CASE WHEN v_nj > 0 THEN p_job_cids[v_j + 1 : v_j + v_nj] END,
            CASE WHEN v_nj > 0 THEN p_job_due[v_j + 1 : v_j + v_nj] END,
            CASE WHEN v_nj > 0 THEN p_job_claimed_by[v_j + 1 : v_j + v_nj] END,
            CASE WHEN v_nj > 0 THEN p_job_lease[v_j + 1 : v_j + v_nj] END,
            CASE WHEN v_na > 0 THEN p_ack[v_a + 1 : v_a + v_na] END,
            p_consumed[i], p_close_streams[i]);
        last_seq := v_out.last_seq;
        written_at := v_out.written_at;
        job_ids := v_out.job_ids;
        closed_streams := v_out.closed_streams;
        RETURN NEXT;
        v_e := v_e + v_ne;
        v_j := v_j + v_nj;
        v_a := v_a + v_na;
    END LOOP;
END
$$;

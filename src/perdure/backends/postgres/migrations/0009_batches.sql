-- Batches of writes as ONE function call: World.append_many and World.create_runs.
-- A worker commits the activations of several runs together, a client several
-- starts; one statement is one transaction (all of them or none) and one round
-- trip, and each part is the very function a single write calls, so a batch
-- writes exactly the rows its parts would alone.

-- World.append_many: append_events once per request, in order. The requests come
-- as one array per argument of append_events: the per-request values (run, guards,
-- flags) one element each, the events, jobs and acks of all requests concatenated,
-- with how many of each belong to each request. One row per request, in order.
CREATE FUNCTION perdure.append_many(
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
BEGIN
    FOR i IN 1 .. coalesce(cardinality(p_run_ids), 0) LOOP
        v_ne := p_event_counts[i];
        v_nj := p_job_counts[i];
        v_na := p_ack_counts[i];
        RETURN QUERY
        SELECT a.last_seq, a.written_at, a.job_ids, a.closed_streams
        FROM perdure.append_events(
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
            p_consumed[i], p_close_streams[i]) a;
        v_e := v_e + v_ne;
        v_j := v_j + v_nj;
        v_a := v_a + v_na;
    END LOOP;
END
$$;

-- World.create_runs: create_run once per request, in order; one row per request,
-- as create_run returns it.
CREATE FUNCTION perdure.create_runs(
    p_workflows text[], p_inputs text[], p_run_ids text[], p_keys text[],
    p_created_at float8[])
    RETURNS TABLE (created boolean, job_id bigint, id text, workflow_name text, status text,
                   idempotency_key text, created_at float8, updated_at float8,
                   started_at float8, completed_at float8, last_seq integer,
                   result_seq integer, consumed_seq integer)
    LANGUAGE plpgsql
    SET plan_cache_mode = force_generic_plan SET enable_seqscan = off
AS $$
BEGIN
    FOR i IN 1 .. coalesce(cardinality(p_run_ids), 0) LOOP
        RETURN QUERY
        SELECT * FROM perdure.create_run(p_workflows[i], p_inputs[i], p_run_ids[i],
                                         p_keys[i], p_created_at[i], NULL, NULL);
    END LOOP;
END
$$;

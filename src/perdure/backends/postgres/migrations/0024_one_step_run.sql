-- A run that a worker starts and ends in one append has a function of its own:
-- perdure.append_one_step_run, for the batch run_started, step_created,
-- step_started, step_completed (or step_failed), run_completed (or run_failed),
-- acking the run's job. A worker that claims a new run of a one-step workflow
-- runs the step at once and commits the whole run in that one append (a short
-- step claimed with its run: Worker): at 2,000 runs a second, 99% of appends are
-- this batch, most of them in append_many, which now sends it here too.
--
-- Why: as for append_next_step (0018) and append_last_step (0023), PL/pgSQL builds
-- each expression it evaluates anew in every transaction, and append_events'
-- general loop evaluates some forty per event of this batch. Straight-line code
-- with scalar arguments evaluates a handful. The step's row is inserted ended
-- (append_events inserts it running, then updates it: the same row in the end,
-- without the dead version).
--
-- It writes what append_events writes for that batch, row for row, and sends the
-- same notifications. Whenever one of its checks fails before anything is written
-- (the run is not pending, an expected seq differs, the events are not this
-- batch, the step's creation and start name different steps, the acked job is
-- not one of this run's), it hands the same batch to append_events, which refuses
-- it or takes its general path exactly as it would have.

CREATE FUNCTION perdure.append_one_step_run(
    p_run_id text,
    p_expected_seq integer,
    p_expected_result_seq integer,
    p_types text[],         -- the five events, in order
    p_cids text[],
    p_data text[],
    p_times float8[],
    p_name text,            -- the step's
    p_ack bigint,           -- the run's job
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
    v_row     tid;
    v_status  text;
    v_last    integer;
    v_result  integer;
    v_started float8;
    v_kind    text;
BEGIN
    -- Writers of a run are serialized from here to commit (invariant 1).
    SELECT r.ctid, r.status, r.last_seq, r.result_seq, r.started_at
    INTO v_row, v_status, v_last, v_result, v_started
    FROM perdure.runs r WHERE r.id = p_run_id
    FOR UPDATE;
    IF v_status = 'pending' AND v_last = coalesce(p_expected_seq, v_last)
       AND v_result = coalesce(p_expected_result_seq, v_result)
       AND p_types[1] = 'run_started' AND p_types[2] = 'step_created'
       AND p_types[3] = 'step_started' AND p_types[4] IN ('step_completed', 'step_failed')
       AND p_types[5] IN ('run_completed', 'run_failed') AND cardinality(p_types) = 5
       AND p_cids[2] = p_cids[3] AND p_cids[3] = p_cids[4] THEN
        SELECT j.kind INTO v_kind FROM perdure.jobs j
        WHERE j.id = p_ack AND j.run_id = p_run_id;
        IF FOUND THEN
            -- nothing can refuse the batch now but a duplicate step (23505), as in
            -- append_events
            INSERT INTO perdure.steps (run_id, correlation_id, seq, name, status, attempt,
                                       created_at, started_at, completed_at)
            VALUES (p_run_id, p_cids[2], v_last + 2, p_name, substr(p_types[4], 6), 1,
                    coalesce(p_times[2], v_now), coalesce(p_times[3], v_now),
                    coalesce(p_times[4], v_now));
            INSERT INTO perdure.events (run_id, seq, event_type, correlation_id, data,
                                        created_at)
            SELECT p_run_id, v_last + u.o, u.t, u.c, u.d, coalesce(u.ts, v_now)
            FROM unnest(p_types, p_cids, p_data, p_times) WITH ORDINALITY AS u(t, c, d, ts, o);
            UPDATE perdure.runs
            SET status = substr(p_types[5], 5),
                started_at = coalesce(v_started, p_times[1], v_now),
                completed_at = coalesce(p_times[5], v_now),
                last_seq = v_last + 5, result_seq = v_last + 4, updated_at = v_now,
                consumed_seq = CASE WHEN p_consumed THEN v_last + 5 ELSE consumed_seq END
            WHERE ctid = v_row;
            DELETE FROM perdure.jobs WHERE id = p_ack;
            IF v_kind = 'workflow'
               AND EXISTS (SELECT FROM perdure._held_back(ARRAY[p_run_id], v_now)) THEN
                PERFORM pg_notify('perdure', 'jobs');
            END IF;
            IF p_close_streams THEN
                -- most runs write no stream: one probe of the chunks' key before the walk
                IF EXISTS (SELECT FROM perdure.chunks c WHERE c.run_id = p_run_id) THEN
                    closed_streams := perdure._close_streams(p_run_id, v_now);
                ELSE
                    closed_streams := '{}';
                END IF;
            END IF;
            PERFORM pg_notify('perdure_runs', 'run:' || p_run_id);
            last_seq := v_last + 5;
            written_at := v_now;
            job_ids := '{}';
            RETURN;
        END IF;
    END IF;
    -- Anything else: the same batch through the general path, which refuses it
    -- (unknown, running or ended run, stale seq, illegal step transition) or
    -- writes it.
    SELECT a.last_seq, a.written_at, a.job_ids, a.closed_streams
    INTO last_seq, written_at, job_ids, closed_streams
    FROM perdure.append_events(
        p_run_id, p_types, p_cids, p_data, p_times,
        ARRAY[NULL, p_name, NULL, NULL, NULL], NULL, NULL, NULL, NULL,
        p_expected_seq, p_expected_result_seq, NULL, NULL, NULL, NULL, NULL, NULL,
        ARRAY[p_ack], p_consumed, p_close_streams) a;
END
$$;

-- append_many sends each request of that shape (five events, no job, one ack)
-- there; append_one_step_run checks the rest. The requests, their order, the rows
-- written and the answers are as before (0022).
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
    v_out record;  -- the answer to one request
BEGIN
    FOR i IN 1 .. coalesce(cardinality(p_run_ids), 0) LOOP
        v_ne := p_event_counts[i];
        v_nj := p_job_counts[i];
        v_na := p_ack_counts[i];
        IF v_ne = 5 AND v_nj = 0 AND v_na = 1 THEN
            v_out := perdure.append_one_step_run(
                p_run_ids[i], p_expected_seq[i], p_expected_result_seq[i],
                p_types[v_e + 1 : v_e + 5], p_cids[v_e + 1 : v_e + 5],
                p_data[v_e + 1 : v_e + 5], p_times[v_e + 1 : v_e + 5], p_names[v_e + 2],
                p_ack[v_a + 1], p_consumed[i], p_close_streams[i]);
        ELSE
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
        END IF;
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

-- A run's last step has a function of its own too: perdure.append_last_step, for
-- the append that ends a run as its last step ends (the step's end, the run's end,
-- the step's job acked, the run's streams closed: EventLog.append picks it). A
-- run whose last step ran on a worker ends with that batch: every sequential
-- workflow, every run that awaits a step before it returns.
--
-- Why: as for append_next_step (0018), PL/pgSQL builds each expression it
-- evaluates anew in every transaction, and append_events' general loop evaluates
-- some forty for this batch. Straight-line code with scalar arguments evaluates a
-- handful.
--
-- It writes what append_events writes for that batch, row for row, and sends the
-- same notification. Whenever one of its checks fails before anything is written
-- (the run is not running, an expected seq differs, the events are not a step's
-- end and a run's end, the acked job is not a step job of this run, the step is
-- not running), it hands the same batch to append_events, which refuses it or
-- takes its general path exactly as it would have.

CREATE FUNCTION perdure.append_last_step(
    p_run_id text,
    p_expected_seq integer,
    p_expected_result_seq integer,
    p_done_type text,       -- step_completed or step_failed
    p_done_cid text,
    p_done_data text,
    p_done_at float8,
    p_end_type text,        -- run_completed or run_failed
    p_end_data text,
    p_end_at float8,
    p_ack bigint,           -- the step's job (or its chain's lease)
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
    v_now    float8 := perdure.clock();
    v_row    tid;
    v_status text;
    v_last   integer;
    v_result integer;
BEGIN
    -- Writers of a run are serialized from here to commit (invariant 1).
    SELECT r.ctid, r.status, r.last_seq, r.result_seq INTO v_row, v_status, v_last, v_result
    FROM perdure.runs r WHERE r.id = p_run_id
    FOR UPDATE;
    IF v_status = 'running' AND v_last = coalesce(p_expected_seq, v_last)
       AND v_result = coalesce(p_expected_result_seq, v_result)
       AND p_done_type IN ('step_completed', 'step_failed')
       AND p_end_type IN ('run_completed', 'run_failed') THEN
        PERFORM FROM perdure.jobs j
        WHERE j.id = p_ack AND j.kind = 'step' AND j.run_id = p_run_id;
        IF FOUND THEN
            UPDATE perdure.steps
            SET status = substr(p_done_type, 6), completed_at = coalesce(p_done_at, v_now)
            WHERE run_id = p_run_id AND correlation_id = p_done_cid AND status = 'running';
        END IF;
        IF FOUND THEN  -- nothing can refuse the batch now
            INSERT INTO perdure.events (run_id, seq, event_type, correlation_id, data,
                                        created_at)
            VALUES (p_run_id, v_last + 1, p_done_type, p_done_cid, p_done_data,
                    coalesce(p_done_at, v_now)),
                   (p_run_id, v_last + 2, p_end_type, NULL, p_end_data,
                    coalesce(p_end_at, v_now));
            UPDATE perdure.runs
            SET status = substr(p_end_type, 5), completed_at = coalesce(p_end_at, v_now),
                last_seq = v_last + 2, result_seq = v_last + 1, updated_at = v_now,
                consumed_seq = CASE WHEN p_consumed THEN v_last + 2 ELSE consumed_seq END
            WHERE ctid = v_row;
            DELETE FROM perdure.jobs WHERE id = p_ack;
            IF p_close_streams THEN
                -- most runs write no stream: one probe of the chunks' key before the walk
                IF EXISTS (SELECT FROM perdure.chunks c WHERE c.run_id = p_run_id) THEN
                    closed_streams := perdure._close_streams(p_run_id, v_now);
                ELSE
                    closed_streams := '{}';
                END IF;
            END IF;
            PERFORM pg_notify('perdure_runs', 'run:' || p_run_id);
            last_seq := v_last + 2;
            written_at := v_now;
            job_ids := '{}';
            RETURN;
        END IF;
    END IF;
    -- Anything else: the same batch through the general path, which refuses it
    -- (unknown or ended run, stale seq, illegal step transition) or writes it.
    SELECT a.last_seq, a.written_at, a.job_ids, a.closed_streams
    INTO last_seq, written_at, job_ids, closed_streams
    FROM perdure.append_events(
        p_run_id, ARRAY[p_done_type, p_end_type], ARRAY[p_done_cid, NULL],
        ARRAY[p_done_data, p_end_data], ARRAY[p_done_at, p_end_at], NULL, NULL, NULL, NULL,
        NULL, p_expected_seq, p_expected_result_seq, NULL, NULL, NULL, NULL, NULL, NULL,
        ARRAY[p_ack], p_consumed, p_close_streams) a;
END
$$;

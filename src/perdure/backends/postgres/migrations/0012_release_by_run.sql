-- release_jobs finds a run's unclaimed continuation through jobs_run, like the
-- held-back check since 0011 (see there why). Its UPDATE `WHERE run_id = ... AND
-- kind = 'workflow' AND claimed_by IS NULL` let the planner, on statistics that
-- show a near-empty queue, scan all of jobs_unclaimed_due instead: releasing 10
-- jobs (a worker's shutdown) read 20,075 rows of a 2,000-job queue. Its jobs are
-- picked by id with `claimed_by IS NOT DISTINCT FROM p_worker`, as 0011's _ack. The
-- rest is 0002's body, with 0006's settings.

-- The unclaimed workflow job of a run (at most one: jobs_workflow_unclaimed), found
-- among the run's jobs by jobs_run; claimed_by is tested on them, not in the WHERE.
CREATE FUNCTION perdure._unclaimed_continuation(p_run_id text)
    RETURNS bigint LANGUAGE sql STABLE
    SET plan_cache_mode = force_generic_plan SET enable_seqscan = off
AS $$
    SELECT w.id FROM (
        SELECT j.id, j.claimed_by FROM perdure.jobs j
        WHERE j.run_id = p_run_id AND j.kind = 'workflow' OFFSET 0) w
    WHERE w.claimed_by IS NULL
$$;

CREATE OR REPLACE FUNCTION perdure.release_jobs(p_worker text, p_ids bigint[])
    RETURNS void LANGUAGE plpgsql
    SET plan_cache_mode = force_generic_plan SET enable_seqscan = off
AS $$
DECLARE
    v_now  float8 := perdure.clock();
    v_job  record;
    v_next bigint;
BEGIN
    FOR v_job IN
        SELECT j.id, j.kind, j.run_id FROM perdure.jobs j
        WHERE j.id = ANY (p_ids) AND j.claimed_by IS NOT DISTINCT FROM p_worker
          AND p_worker IS NOT NULL  -- see 0011's _ack
        ORDER BY j.id FOR UPDATE
    LOOP
        IF v_job.kind = 'workflow' THEN
            v_next := perdure._unclaimed_continuation(v_job.run_id);
            IF v_next IS NOT NULL THEN
                UPDATE perdure.jobs SET due_at = least(due_at, v_now) WHERE id = v_next;
                DELETE FROM perdure.jobs WHERE id = v_job.id;
                CONTINUE;
            END IF;
        END IF;
        BEGIN
            UPDATE perdure.jobs
            SET claimed_by = NULL, lease_expires_at = NULL, due_at = least(due_at, v_now)
            WHERE id = v_job.id;
        EXCEPTION WHEN unique_violation THEN
            -- an unclaimed continuation was enqueued meanwhile: fold into it
            UPDATE perdure.jobs SET due_at = least(due_at, v_now)
            WHERE id = perdure._unclaimed_continuation(v_job.run_id);
            DELETE FROM perdure.jobs WHERE id = v_job.id;
        END;
    END LOOP;
    PERFORM pg_notify('perdure', 'jobs');
END
$$;

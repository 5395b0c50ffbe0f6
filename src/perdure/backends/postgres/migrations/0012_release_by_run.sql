-- release_jobs finds a run's unclaimed continuation with 0011's _workflow_jobs,
-- like the held-back check (see 0011 why). Its UPDATE `WHERE run_id = ... AND
-- kind = 'workflow' AND claimed_by IS NULL` let the planner, on statistics that
-- show a near-empty queue, scan all of jobs_unclaimed_due instead: releasing 10
-- jobs (a worker's shutdown) read 20,075 rows of a 2,000-job queue. Its jobs are
-- picked by id with `claimed_by IS NOT DISTINCT FROM p_worker`, as 0011's _ack. The
-- rest is 0002's body, with 0006's settings.

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
            SELECT w.id INTO v_next FROM perdure._workflow_jobs(v_job.run_id) w
            WHERE w.claimed_by IS NULL;  -- at most one: jobs_workflow_unclaimed
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
            WHERE id = (SELECT w.id FROM perdure._workflow_jobs(v_job.run_id) w
                        WHERE w.claimed_by IS NULL);
            DELETE FROM perdure.jobs WHERE id = v_job.id;
        END;
    END LOOP;
    PERFORM pg_notify('perdure', 'jobs');
END
$$;

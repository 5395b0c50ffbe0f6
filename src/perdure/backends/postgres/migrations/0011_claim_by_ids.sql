-- Queue statements that stay index lookups whatever the statistics say.
--
-- The write path plans once per session (0006: generic plans, no sequential scans).
-- The jobs table's statistics are whatever the last vacuum saw, often by the
-- workers' own tidying (World.tidy_queue) of a queue that was then nearly empty: one
-- live job in 24 pages. The planner then expects one job however long the queue has
-- grown since, and every path costs about the same. Two kinds of path it may then
-- pick read the whole queue:
--   - a full scan of an index whose order the statement can use (0002's claim took
--     DISTINCT run_id and row_number() over its candidates from the table, so it
--     scanned jobs_run whole, twice);
--   - a full scan of a partial index whose predicate the WHERE implies (the held-back
--     check's `claimed_by IS NULL` made all of jobs_unclaimed_due a candidate path).
-- 0002's claim also updated FROM its candidate CTE, and one plan put the whole queue
-- on the outer side of that join, recomputing the candidates for every job: on a
-- fresh benchmark database a claim of 15 jobs read 29,000 buffers (25 ms), and a
-- worker ran 60 to 150 one-step workflows/s instead of 1,200.
--
-- Now the claim reads the queue only in due order (the two locking SELECTs, as
-- before), takes its candidates' run ids, kinds and due times along in arrays, works
-- out which to hand out over those arrays, and updates them by id (the primary key
-- is the only index an `id = ANY` UPDATE can use). Where a statement looks at a
-- run's other jobs (the claim's live-lease check, the held-back check), it finds
-- them by jobs_run and tests claimed_by, leases and due times on those rows, in a
-- subquery the planner cannot merge (OFFSET 0), not in its WHERE: the lease check
-- read every live-leased job of every worker once per candidate.
--
-- Semantics are 0002's: the check against another live workflow job of the run is
-- still made in a statement that starts after the run's advisory lock is taken.

-- A run's workflow jobs, found by jobs_run. Callers test claimed_by, leases and due
-- times on these rows, not in a WHERE of their own; OFFSET 0 keeps the planner from
-- merging those tests back (see above). SQL, STABLE and without settings, so it is
-- inlined into its callers and planned with their settings.
CREATE FUNCTION perdure._workflow_jobs(p_run_id text)
    RETURNS TABLE (id bigint, claimed_by text, lease_expires_at float8, due_at float8)
    LANGUAGE sql STABLE
AS $$
    SELECT j.id, j.claimed_by, j.lease_expires_at, j.due_at FROM perdure.jobs j
    WHERE j.run_id = p_run_id AND j.kind = 'workflow' OFFSET 0
$$;

CREATE OR REPLACE FUNCTION perdure.claim_jobs(p_worker text, p_limit integer,
                                              p_lease float8, p_kinds text[])
    RETURNS TABLE (id bigint, kind text, run_id text, correlation_id text, due_at float8,
                   claimed_by text, lease_expires_at float8, attempts integer)
    LANGUAGE plpgsql
    SET plan_cache_mode = force_generic_plan SET enable_seqscan = off
AS $$
#variable_conflict use_column
DECLARE
    v_now         float8 := perdure.clock();
    v_ids         bigint[];
    v_kinds       text[];
    v_run_ids     text[];
    v_dues        float8[];
    v_more        bigint[];
    v_more_kinds  text[];
    v_more_runs   text[];
    v_more_dues   float8[];
    v_runs        text[];  -- runs whose advisory lock this claim holds
    v_claim       bigint[];
BEGIN
    -- Expired leases (rare; a worker died), then unclaimed due jobs, in index order.
    SELECT coalesce(array_agg(c.id), '{}'), coalesce(array_agg(c.kind), '{}'),
           coalesce(array_agg(c.run_id), '{}'), coalesce(array_agg(c.due_at), '{}')
    INTO v_ids, v_kinds, v_run_ids, v_dues FROM (
        SELECT j.id, j.kind, j.run_id, j.due_at FROM perdure.jobs j
        WHERE j.claimed_by IS NOT NULL AND j.lease_expires_at <= v_now AND j.due_at <= v_now
          AND j.kind = ANY (p_kinds)
        ORDER BY j.lease_expires_at
        LIMIT p_limit
        FOR UPDATE SKIP LOCKED) c;
    IF cardinality(v_ids) < p_limit THEN
        SELECT coalesce(array_agg(c.id), '{}'), coalesce(array_agg(c.kind), '{}'),
               coalesce(array_agg(c.run_id), '{}'), coalesce(array_agg(c.due_at), '{}')
        INTO v_more, v_more_kinds, v_more_runs, v_more_dues FROM (
            SELECT j.id, j.kind, j.run_id, j.due_at FROM perdure.jobs j
            WHERE j.claimed_by IS NULL AND j.due_at <= v_now AND j.kind = ANY (p_kinds)
              AND NOT (j.kind = 'workflow' AND EXISTS (
                  SELECT 1 FROM perdure._workflow_jobs(j.run_id) o
                  WHERE o.id <> j.id AND o.claimed_by IS NOT NULL
                    AND o.lease_expires_at > v_now))
            ORDER BY j.due_at, j.id
            LIMIT p_limit - cardinality(v_ids)
            FOR UPDATE SKIP LOCKED) c;
        v_ids := v_ids || v_more;
        v_kinds := v_kinds || v_more_kinds;
        v_run_ids := v_run_ids || v_more_runs;
        v_dues := v_dues || v_more_dues;
    END IF;
    IF cardinality(v_ids) = 0 THEN
        RETURN;
    END IF;

    -- Runs of the workflow candidates whose claim lock we get (never waiting).
    SELECT coalesce(array_agg(r.run_id), '{}') INTO v_runs FROM (
        SELECT DISTINCT u.run_id FROM unnest(v_run_ids, v_kinds) AS u(run_id, kind)
        WHERE u.kind = 'workflow') r
    WHERE pg_try_advisory_xact_lock(1, hashtext(r.run_id));

    -- Step jobs all; of each locked run, its first workflow job, unless another
    -- workflow job of the run holds a live lease (seen after the lock was taken).
    SELECT coalesce(array_agg(cand.id), '{}') INTO v_claim FROM (
        SELECT u.id, u.kind, u.run_id,
               row_number() OVER (PARTITION BY u.run_id, u.kind ORDER BY u.due_at, u.id) AS nth
        FROM unnest(v_ids, v_kinds, v_run_ids, v_dues) AS u(id, kind, run_id, due_at)
    ) cand
    WHERE cand.kind <> 'workflow' OR (
        cand.nth = 1 AND cand.run_id = ANY (v_runs)
        AND NOT EXISTS (
            SELECT 1 FROM perdure._workflow_jobs(cand.run_id) o
            WHERE o.id <> cand.id AND o.claimed_by IS NOT NULL
              AND o.lease_expires_at > v_now));

    RETURN QUERY
    WITH claimed AS (
        UPDATE perdure.jobs j
        SET claimed_by = p_worker,
            lease_expires_at = v_now + p_lease,
            attempts = j.attempts + 1
        WHERE j.id = ANY (v_claim)
        RETURNING j.id, j.kind, j.run_id, j.correlation_id, j.due_at, j.claimed_by,
                  j.lease_expires_at, j.attempts
    )
    SELECT c.id, c.kind, c.run_id, c.correlation_id, c.due_at, c.claimed_by,
           c.lease_expires_at, c.attempts
    FROM claimed c ORDER BY c.due_at, c.id;
END
$$;

-- An unclaimed continuation of these runs that is due was held back by the lease of
-- the workflow jobs just acked: NOTIFY jobs.
CREATE OR REPLACE FUNCTION perdure._wake_held_back(p_runs text[], p_now float8)
    RETURNS void LANGUAGE plpgsql
    SET plan_cache_mode = force_generic_plan SET enable_seqscan = off
AS $$
BEGIN
    IF EXISTS (SELECT FROM unnest(p_runs) AS r(run_id)
               CROSS JOIN LATERAL perdure._workflow_jobs(r.run_id) w
               WHERE w.claimed_by IS NULL AND w.due_at <= p_now) THEN
        PERFORM pg_notify('perdure', 'jobs');
    END IF;
END
$$;

-- World.ack: delete jobs, only those claimed by p_worker. `claimed_by = p_worker`
-- implied jobs_claimed_lease's predicate and made a scan of every worker's leased
-- jobs a candidate path; IS NOT DISTINCT FROM implies nothing, so the primary key
-- finds the jobs.
CREATE OR REPLACE FUNCTION perdure._ack(p_ids bigint[], p_worker text, p_now float8)
    RETURNS void LANGUAGE plpgsql
    SET plan_cache_mode = force_generic_plan SET enable_seqscan = off
AS $$
DECLARE
    v_runs text[];
BEGIN
    WITH d AS (
        DELETE FROM perdure.jobs
        WHERE id = ANY (p_ids) AND claimed_by IS NOT DISTINCT FROM p_worker
          AND p_worker IS NOT NULL  -- as `claimed_by = p_worker`: a NULL worker acks nothing
        RETURNING kind, run_id
    )
    SELECT array_agg(d.run_id) FILTER (WHERE d.kind = 'workflow') INTO v_runs FROM d;
    IF v_runs IS NOT NULL THEN
        PERFORM perdure._wake_held_back(v_runs, p_now);
    END IF;
END
$$;

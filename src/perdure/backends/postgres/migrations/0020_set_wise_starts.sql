-- A batch of starts (World.create_runs) in three set-wise inserts, not one
-- _create_run call per run: the server's instructions per run of a batch of ten
-- fell from 466 k to 289 k (callgrind, docs/performance.md). Every run a client
-- starts while another start is in flight comes through here (the Engine batches
-- concurrent starts), so this is most of a busy client's server cost.
--
-- 0009 called create_run, and it _create_run, once per request: each a PL/pgSQL
-- call with its own statements, expressions and pg_notify. The rows are the same:
-- a pending run, its run_created event (the same JSON text, built the same way)
-- and an unclaimed workflow job per created run, inserted in the requests' order
-- (the Engine sorts a batch by idempotency key, so two batches take the keys'
-- locks in one order), and one wake-up for the workers. _create_run stays the
-- single start's and create_run_started's.
--
-- A request whose idempotency key is taken (by an earlier run, or by an earlier
-- request of the same batch) creates nothing and returns the run under that key,
-- as before. The final SELECT is a statement of its own: it reads a fresh snapshot,
-- which holds a run another transaction committed under a requested key while this
-- one waited for it. It looks each run up by its key: joined to the runs table
-- instead, on a small table's statistics the plan hashed the whole table for every
-- batch.
CREATE OR REPLACE FUNCTION perdure.create_runs(
    p_workflows text[], p_inputs text[], p_run_ids text[], p_keys text[],
    p_created_at float8[])
    RETURNS TABLE (created boolean, job_id bigint, id text, workflow_name text, status text,
                   idempotency_key text, created_at float8, updated_at float8,
                   started_at float8, completed_at float8, last_seq integer,
                   result_seq integer, consumed_seq integer)
    LANGUAGE plpgsql
    SET plan_cache_mode = force_generic_plan SET enable_seqscan = off
AS $$
#variable_conflict use_column
DECLARE
    v_now  float8 := perdure.clock();
    v_made text[];
    v_jobs bigint[];
BEGIN
    WITH req AS (
        SELECT * FROM unnest(p_run_ids, p_workflows, p_inputs, p_keys, p_created_at)
            WITH ORDINALITY AS u(id, w, i, k, at, o)
    ), made AS (
        INSERT INTO perdure.runs (id, workflow_name, status, idempotency_key, created_at,
                                  updated_at, last_seq)
        SELECT req.id, req.w, 'pending', req.k, coalesce(req.at, v_now), v_now, 1
        FROM req ORDER BY req.o
        ON CONFLICT (idempotency_key) DO NOTHING
        RETURNING runs.id, runs.created_at
    ), logged AS (
        INSERT INTO perdure.events (run_id, seq, event_type, correlation_id, data, created_at)
        SELECT req.id, 1, 'run_created', NULL,
               '{"workflow":' || to_json(req.w)::text || ',"input":' || req.i
               || ',"idempotency_key":' || coalesce(to_json(req.k)::text, 'null') || '}',
               made.created_at
        FROM made JOIN req ON req.id = made.id
    ), queued AS (
        INSERT INTO perdure.jobs (kind, run_id, due_at, created_at)
        SELECT 'workflow', made.id, v_now, v_now FROM made
        RETURNING jobs.id, jobs.run_id
    )
    SELECT array_agg(queued.run_id), array_agg(queued.id) INTO v_made, v_jobs FROM queued;
    IF v_made IS NOT NULL THEN
        PERFORM pg_notify('perdure', 'jobs');
    END IF;
    RETURN QUERY
    SELECT m.id IS NOT NULL, m.job, r.id, r.workflow_name, r.status, r.idempotency_key,
           r.created_at, r.updated_at, r.started_at, r.completed_at,
           r.last_seq, r.result_seq, r.consumed_seq
    FROM unnest(p_run_ids, p_keys) WITH ORDINALITY AS u(id, k, o)
    LEFT JOIN unnest(v_made, v_jobs) AS m(id, job) ON m.id = u.id
    CROSS JOIN LATERAL (  -- OFFSET 0: a key lookup per request, never a join plan
        SELECT * FROM perdure.runs r                 -- that reads the whole table
        WHERE r.id = coalesce(m.id, (SELECT r2.id FROM perdure.runs r2
                                     WHERE r2.idempotency_key = u.k))
        OFFSET 0) r
    ORDER BY u.o;
END
$$;

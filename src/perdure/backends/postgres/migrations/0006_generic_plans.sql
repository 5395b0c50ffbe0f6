-- The write path's functions plan once per session, and always through an index.
--
-- Under plan_cache_mode = auto, PL/pgSQL statements whose parameters are arrays
-- (id = ANY (p_ack), unnest of the event arrays) or CTEs kept choosing custom plans:
-- the planner ran on every call, about 14% of a backend's CPU in a sequential step.
-- Every query in these functions is a key lookup or a queue scan in index order,
-- so a generic plan is the right plan, made once.
--
-- Once made, a plan stays for the session. The jobs table is a queue: empty when a
-- worker starts, hundreds of pages of dead rows under load until vacuum catches up.
-- A plan made while it was empty seq-scans (cheapest on no pages) and then read
-- every page on each ack. enable_seqscan = off makes these plans use the indexes
-- they were written for whatever the table's size when planned.
--
-- Both settings are scoped to these functions: ad hoc reads (list filters) keep
-- custom plans and the planner's own choices.
DO $$
DECLARE
    v_fn regprocedure;
BEGIN
    FOR v_fn IN
        SELECT p.oid::regprocedure FROM pg_proc p
        WHERE p.pronamespace = 'perdure'::regnamespace
          AND p.proname IN ('append_events', '_insert_jobs', '_wake_held_back', '_ack',
                            '_stream_append', '_close_streams', '_create_run', 'create_run',
                            'claim_jobs', 'release_jobs', 'write_chunks', 'close_stream')
    LOOP
        EXECUTE format('ALTER FUNCTION %s SET plan_cache_mode = force_generic_plan '
                       'SET enable_seqscan = off', v_fn);
    END LOOP;
END
$$;

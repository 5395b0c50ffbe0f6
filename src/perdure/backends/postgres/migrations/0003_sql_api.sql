-- The SQL API (DESIGN.md 1.2): start a run, resume a hook, read a run's status,
-- from any SQL client, inside the caller's transaction. A rolled-back transaction
-- leaves no trace, and the NOTIFY that wakes workers is sent only at commit.

CREATE FUNCTION perdure.start_workflow(name text, args jsonb, idempotency_key text DEFAULT NULL)
    RETURNS text LANGUAGE plpgsql
AS $$
BEGIN
    IF args IS NULL OR jsonb_typeof(args) <> 'array' THEN
        RAISE EXCEPTION 'perdure.start_workflow: args must be a JSON array of positional arguments, got %',
            coalesce(jsonb_typeof(args), 'NULL')
            USING ERRCODE = '22023', HINT = 'for one argument pass ''["o-1"]''::jsonb';
    END IF;
    PERFORM FROM perdure.workflows w WHERE w.name = start_workflow.name;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'perdure.start_workflow: unknown workflow %', start_workflow.name
            USING ERRCODE = 'PD005',
                  HINT = 'workflows are registered by the workers that run them, when they start';
    END IF;
    IF idempotency_key IS NOT NULL AND length(idempotency_key) NOT BETWEEN 1 AND 512 THEN
        RAISE EXCEPTION 'perdure.start_workflow: an idempotency key is 1 to 512 characters, got %',
            length(idempotency_key) USING ERRCODE = '22023';
    END IF;
    RETURN (perdure._create_run(start_workflow.name, args::text, perdure.uuid7(),
                                start_workflow.idempotency_key, NULL)).run_id;
END
$$;

-- Deliver a payload to the active hook holding token: hook_received plus a workflow
-- job, through the same append as the workers'. False when no active hook holds it
-- (or its run has ended).
CREATE FUNCTION perdure.resume_hook(token text, payload jsonb)
    RETURNS boolean LANGUAGE plpgsql
AS $$
DECLARE
    v_run    text;
    v_cid    text;
    v_status text;
BEGIN
    -- The hook may be disposed (and its token reused) between the lookup and the run
    -- lock: look again under the lock, a few times.
    FOR attempt IN 1 .. 3 LOOP
        SELECT h.run_id, h.correlation_id INTO v_run, v_cid FROM perdure.hooks h
        WHERE h.token = resume_hook.token AND h.status = 'active';
        IF NOT FOUND THEN
            RETURN false;
        END IF;
        SELECT r.status INTO v_status FROM perdure.runs r WHERE r.id = v_run FOR UPDATE;
        PERFORM FROM perdure.hooks h
        WHERE h.run_id = v_run AND h.correlation_id = v_cid AND h.status = 'active';
        IF FOUND THEN
            IF v_status NOT IN ('pending', 'running') THEN
                RETURN false;
            END IF;
            PERFORM perdure.append_events(
                v_run, ARRAY['hook_received'], ARRAY[v_cid],
                ARRAY['{"payload":' || coalesce(payload::text, 'null') || '}'],
                ARRAY[NULL::float8], NULL, NULL, NULL, NULL, NULL, NULL, NULL,
                ARRAY['workflow'], ARRAY[v_run], ARRAY[NULL::text], ARRAY[NULL::float8],
                ARRAY[NULL::text], ARRAY[NULL::float8], NULL, false, false);
            RETURN true;
        END IF;
    END LOOP;
    RETURN false;
END
$$;

CREATE FUNCTION perdure.run_status(run_id text)
    RETURNS text LANGUAGE sql STABLE
AS $$
    SELECT r.status FROM perdure.runs r WHERE r.id = run_status.run_id
$$;

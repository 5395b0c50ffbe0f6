-- Invariant 3 (a creation event is unique per run, correlation id and type) is held
-- by the entities' primary keys, as on Postgres (its migration 0017): each creation
-- event is applied to its entity's row first (runs' id; steps, waits and hooks on
-- (run_id, correlation_id)), a duplicate's INSERT hits that key, and the batch is
-- rolled back before any event is written. Nothing reads through events_creation,
-- and every event insert maintained it.
DROP INDEX events_creation;

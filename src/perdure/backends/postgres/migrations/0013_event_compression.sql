-- Event data (a step's arguments and result, a run's input and output, a hook's
-- payload) is JSON text, and a value over about 2 KB is compressed before it goes
-- out of line. pglz, the default, is slow: a 10 KB JSON document took the server
-- 1.15 M instructions to insert with pglz against 0.36 M with lz4, which stored
-- it in 18% more space (callgrind, the insert statement and its commit included).
-- On data that does not compress (the benchmark's random payloads) pglz tries and
-- fails; lz4 gives up sooner: 0.11 M fewer instructions per 10 KB step.
-- lz4 needs a server built --with-lz4 (PostgreSQL 14 or later; Debian's and most
-- packagers' are): elsewhere the column keeps the default. Existing values stay
-- as they are; new ones are compressed with lz4.
DO $$
BEGIN
    IF EXISTS (SELECT FROM pg_settings
               WHERE name = 'default_toast_compression' AND 'lz4' = ANY (enumvals)) THEN
        ALTER TABLE perdure.events ALTER COLUMN data SET COMPRESSION lz4;
    END IF;
END
$$;

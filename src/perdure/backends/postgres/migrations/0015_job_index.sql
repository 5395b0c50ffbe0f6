-- A run's jobs in one index: (run_id, correlation_id), unique, in place of
-- jobs_run (run_id) and jobs_step (run_id, correlation_id) WHERE kind = 'step'.
--
-- Every job insert wrote an entry in both; most jobs are step jobs, one per step.
-- The new index does the work of each: a run's jobs are its prefix (_workflow_jobs,
-- the claim's live-lease check, release by run), and one job per step is its
-- uniqueness, since only step jobs have a correlation id (a workflow job's is NULL,
-- and NULLs never collide). _insert_jobs' ON CONFLICT (run_id, correlation_id)
-- WHERE kind = 'step' infers it as it inferred jobs_step. A sequential step costs
-- the server 2.4% fewer instructions (916 against 939 k, callgrind,
-- docs/performance.md).
--
-- The queue is short, so the index builds in moments; writers of jobs wait for it.
CREATE UNIQUE INDEX jobs_run_step ON perdure.jobs (run_id, correlation_id);
DROP INDEX perdure.jobs_step;
DROP INDEX perdure.jobs_run;

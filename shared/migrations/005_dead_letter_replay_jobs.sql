-- "Replay all" as a job: the letters pending when it was asked for are snapshot into
-- dead_letter_replay_job_letters (so the letters its own replays create are never replayed
-- by it), and the service's runtime replays them in bounded batches, one transaction each
-- (any instance, or the same after a restart, goes on where the last batch committed).
CREATE TABLE dead_letter_replay_jobs (
    id          bigserial PRIMARY KEY,
    consumer    text,
    actor       text        NOT NULL,
    batch_size  integer     NOT NULL CHECK (batch_size > 0),
    status      text        NOT NULL DEFAULT 'running' CHECK (status IN ('running', 'done')),
    total       integer     NOT NULL DEFAULT 0,
    replayed    integer     NOT NULL DEFAULT 0,
    skipped     integer     NOT NULL DEFAULT 0,
    created_at  timestamptz NOT NULL DEFAULT now(),
    finished_at timestamptz
);
-- one job at a time per service
CREATE UNIQUE INDEX dead_letter_replay_jobs_running ON dead_letter_replay_jobs ((true))
    WHERE status = 'running';

-- The letters a running job has still to replay (removed as each batch is done).
CREATE TABLE dead_letter_replay_job_letters (
    job_id         bigint NOT NULL REFERENCES dead_letter_replay_jobs (id),
    dead_letter_id bigint NOT NULL,
    PRIMARY KEY (job_id, dead_letter_id)
);

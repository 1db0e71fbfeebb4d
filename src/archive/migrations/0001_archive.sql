-- The archive of finished (and deleted) CrewExecutions. One row per execution uid; typed, indexed columns for
-- what users filter on; the object itself as JSONB. Lists page by keyset (finished_at, uid), never OFFSET.
CREATE TABLE executions (
    uid                      text        PRIMARY KEY,
    namespace                text        NOT NULL,
    name                     text        NOT NULL,
    resource_version         bigint      NOT NULL,
    phase                    text        NOT NULL,
    reason                   text,
    message                  text,
    failed_step              text,
    queue                    text        NOT NULL DEFAULT '',
    priority                 integer     NOT NULL DEFAULT 0,
    created_at               timestamptz,
    started_at               timestamptz,
    finished_at              timestamptz NOT NULL,
    duration_seconds         bigint,
    queue_wait_seconds       bigint,
    attempts                 integer     NOT NULL DEFAULT 0,
    steps_total              integer     NOT NULL DEFAULT 0,
    steps_succeeded          integer     NOT NULL DEFAULT 0,
    deleted_before_finishing boolean     NOT NULL DEFAULT false,
    archived_at              timestamptz NOT NULL DEFAULT now(),
    object                   jsonb       NOT NULL
);
CREATE INDEX executions_newest ON executions (finished_at DESC, uid DESC);
CREATE INDEX executions_by_namespace ON executions (namespace, finished_at DESC, uid DESC);
CREATE INDEX executions_by_name ON executions (namespace, name, finished_at DESC);
CREATE INDEX executions_by_phase ON executions (namespace, phase, finished_at DESC, uid DESC);
CREATE INDEX executions_by_queue ON executions (namespace, queue, finished_at DESC, uid DESC);
CREATE INDEX executions_by_failed_step ON executions (namespace, failed_step, finished_at DESC, uid DESC)
    WHERE failed_step IS NOT NULL;

-- metadata.labels, one row per label: a selector is an index lookup, not a JSONB scan.
CREATE TABLE execution_labels (
    uid   text NOT NULL REFERENCES executions (uid) ON DELETE CASCADE,
    key   text NOT NULL,
    value text NOT NULL,
    PRIMARY KEY (uid, key)
);
CREATE INDEX execution_labels_by_pair ON execution_labels (key, value, uid);

-- One row per step attempt.
CREATE TABLE step_attempts (
    uid         text        NOT NULL REFERENCES executions (uid) ON DELETE CASCADE,
    step        text        NOT NULL,
    attempt     integer     NOT NULL,
    phase       text        NOT NULL,
    exit_code   integer,
    reason      text,
    message     text,
    started_at  timestamptz,
    finished_at timestamptz,
    job_name    text,
    PRIMARY KEY (uid, step, attempt)
);

-- Posted step results, whole (up to 1 MiB each).
CREATE TABLE step_results (
    uid          text   NOT NULL REFERENCES executions (uid) ON DELETE CASCADE,
    step         text   NOT NULL,
    content_type text   NOT NULL,
    sha256       text   NOT NULL,
    size         bigint NOT NULL,
    body         bytea  NOT NULL,
    PRIMARY KEY (uid, step)
);

-- Statistics, maintained in the same transaction as each archived row: per granularity ('hour', 'day'), bucket
-- start, namespace and queue; durations as a fixed histogram (crew_core::archive::histogram) for p50 / p95.
CREATE TABLE rollups (
    granularity  text        NOT NULL,
    bucket       timestamptz NOT NULL,
    namespace    text        NOT NULL,
    queue        text        NOT NULL,
    total        bigint      NOT NULL DEFAULT 0,
    succeeded    bigint      NOT NULL DEFAULT 0,
    failed       bigint      NOT NULL DEFAULT 0,
    cancelled    bigint      NOT NULL DEFAULT 0,
    deleted      bigint      NOT NULL DEFAULT 0,
    duration_sum bigint      NOT NULL DEFAULT 0,
    durations    bigint[]    NOT NULL,
    PRIMARY KEY (granularity, bucket, namespace, queue)
);

-- Failures by step and reason, per day, namespace and queue.
CREATE TABLE failure_rollups (
    day       timestamptz NOT NULL,
    namespace text        NOT NULL,
    queue     text        NOT NULL,
    step      text        NOT NULL,
    reason    text        NOT NULL,
    count     bigint      NOT NULL DEFAULT 0,
    PRIMARY KEY (day, namespace, queue, step, reason)
);

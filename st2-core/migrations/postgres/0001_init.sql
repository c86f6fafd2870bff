-- st2-rs PostgreSQL schema, version 1.
--
-- Conventions:
-- * Every record keeps its whole document in `doc` (type `json`, not `jsonb`: `json` keeps the
--   text as written, so object key order and `\u0000` escapes round-trip exactly, as they do in
--   StackStorm's MongoDB). Columns next to it hold the values listings filter and sort on; a
--   column written by a targeted update (a status, an execution id, a revision) is authoritative
--   over the same field inside `doc`.
-- * Timestamps are `bigint` microseconds since the Unix epoch (UTC), exactly what the store's
--   record types keep, so they round-trip bit for bit.
-- * Text columns that are sorted or prefix-matched use the "C" collation: byte order, the same on
--   every server whatever its locale.
-- The file runs inside the migration transaction; the search path points at the target schema.

CREATE TABLE trigger_instances (
    id              text COLLATE "C" PRIMARY KEY,
    trigger_ref     text NOT NULL,
    trigger_type    text,
    status          text NOT NULL,
    occurrence_time bigint NOT NULL,
    doc             json NOT NULL
);
CREATE INDEX trigger_instances_time ON trigger_instances (occurrence_time, id);
CREATE INDEX trigger_instances_trigger ON trigger_instances (trigger_ref, occurrence_time);
CREATE INDEX trigger_instances_type ON trigger_instances (trigger_type, occurrence_time);
CREATE INDEX trigger_instances_status ON trigger_instances (status, occurrence_time);

CREATE TABLE executions (
    id               text COLLATE "C" PRIMARY KEY,
    seq              bigserial NOT NULL UNIQUE,
    revision         bigint NOT NULL,
    action_ref       text NOT NULL,
    status           text NOT NULL,
    parent           text COLLATE "C",
    user_name        text,
    runner           text,
    rule_ref         text,
    trigger_ref      text,
    trigger_type     text,
    trigger_instance text,
    start_ts         bigint NOT NULL,
    end_ts           bigint,
    doc              json NOT NULL
);
CREATE INDEX executions_time ON executions (start_ts, id);
CREATE INDEX executions_action ON executions (action_ref, start_ts);
CREATE INDEX executions_status ON executions (status, start_ts);
CREATE INDEX executions_parent ON executions (parent, seq);
CREATE INDEX executions_user ON executions (user_name, start_ts);
CREATE INDEX executions_runner ON executions (runner, start_ts);
CREATE INDEX executions_rule ON executions (rule_ref, start_ts);
CREATE INDEX executions_trigger ON executions (trigger_ref, start_ts);
CREATE INDEX executions_trigger_type ON executions (trigger_type, start_ts);
CREATE INDEX executions_trigger_instance ON executions (trigger_instance, start_ts);

CREATE TABLE execution_output (
    seq          bigserial PRIMARY KEY,
    execution_id text COLLATE "C" NOT NULL,
    action_ref   text NOT NULL,
    runner_ref   text NOT NULL,
    ts           bigint NOT NULL,
    output_type  text NOT NULL,
    -- The chunk's UTF-8 bytes: `bytea`, because `text` cannot hold NUL characters.
    data         bytea NOT NULL
);
CREATE INDEX execution_output_execution ON execution_output (execution_id, seq);
CREATE INDEX execution_output_time ON execution_output (ts);

CREATE TABLE rule_enforcements (
    id                  text COLLATE "C" PRIMARY KEY,
    rule_ref            text NOT NULL,
    rule_id             text,
    execution_id        text,
    trigger_instance_id text NOT NULL,
    enforced_at         bigint NOT NULL,
    doc                 json NOT NULL
);
CREATE INDEX rule_enforcements_time ON rule_enforcements (enforced_at, id);
CREATE INDEX rule_enforcements_rule_ref ON rule_enforcements (rule_ref, enforced_at);
CREATE INDEX rule_enforcements_rule_id ON rule_enforcements (rule_id, enforced_at);
CREATE INDEX rule_enforcements_execution ON rule_enforcements (execution_id);
CREATE INDEX rule_enforcements_trigger_instance ON rule_enforcements (trigger_instance_id);

CREATE TABLE key_values (
    scope     text COLLATE "C" NOT NULL,
    name      text COLLATE "C" NOT NULL,
    id        text NOT NULL,
    expire_at bigint,
    doc       json NOT NULL,
    PRIMARY KEY (scope, name)
);
CREATE INDEX key_values_name ON key_values (name);
CREATE INDEX key_values_expiry ON key_values (expire_at) WHERE expire_at IS NOT NULL;

CREATE TABLE tokens (
    id         text COLLATE "C" PRIMARY KEY,
    token_hash text NOT NULL UNIQUE,
    expiry     bigint NOT NULL,
    doc        json NOT NULL
);
CREATE INDEX tokens_expiry ON tokens (expiry);

CREATE TABLE api_keys (
    id         text COLLATE "C" PRIMARY KEY,
    key_hash   text NOT NULL UNIQUE,
    enabled    boolean NOT NULL,
    created_at bigint NOT NULL,
    doc        json NOT NULL
);
CREATE INDEX api_keys_created ON api_keys (created_at, id);

CREATE TABLE workflows (
    id           text COLLATE "C" PRIMARY KEY,
    seq          bigserial NOT NULL UNIQUE,
    execution_id text NOT NULL,
    revision     bigint NOT NULL,
    doc          json NOT NULL
);
CREATE INDEX workflows_execution ON workflows (execution_id, seq);

CREATE TABLE workflow_tasks (
    id          text COLLATE "C" PRIMARY KEY,
    seq         bigserial NOT NULL UNIQUE,
    workflow_id text COLLATE "C" NOT NULL,
    doc         json NOT NULL
);
CREATE INDEX workflow_tasks_workflow ON workflow_tasks (workflow_id, seq);

CREATE TABLE inquiries (
    id          text COLLATE "C" PRIMARY KEY,
    status      text NOT NULL,
    created_at  bigint NOT NULL,
    resolved_at bigint,
    response    json,
    doc         json NOT NULL
);
CREATE INDEX inquiries_created ON inquiries (created_at, id);
CREATE INDEX inquiries_status ON inquiries (status, created_at);

CREATE TABLE traces (
    id                   text COLLATE "C" PRIMARY KEY,
    trace_tag            text NOT NULL,
    start_ts             bigint NOT NULL,
    trigger_instance_ids text[] NOT NULL DEFAULT '{}',
    rule_ids             text[] NOT NULL DEFAULT '{}',
    execution_ids        text[] NOT NULL DEFAULT '{}',
    doc                  json NOT NULL
);
CREATE INDEX traces_time ON traces (start_ts, id);
CREATE INDEX traces_tag ON traces (trace_tag, start_ts);
CREATE INDEX traces_trigger_instances ON traces USING gin (trigger_instance_ids);
CREATE INDEX traces_rules ON traces USING gin (rule_ids);
CREATE INDEX traces_executions ON traces USING gin (execution_ids);

-- The work queue. `state` is 'ready' (claimable from `not_before`) or 'leased' (held by the
-- claim whose fence is `fence` until `lease_expires_at`, expired or not until reaped).
CREATE SEQUENCE work_fence AS bigint;
CREATE TABLE work_items (
    id               bigserial PRIMARY KEY,
    queue            text NOT NULL,
    payload          json NOT NULL,
    required_tag     text,
    not_before       bigint NOT NULL,
    enqueued_at      bigint NOT NULL,
    attempts         integer NOT NULL DEFAULT 0,
    state            text NOT NULL DEFAULT 'ready' CHECK (state IN ('ready', 'leased')),
    fence            bigint,
    leased_by        text,
    lease_expires_at bigint
);
CREATE INDEX work_items_ready ON work_items (queue, not_before, id) WHERE state = 'ready';
CREATE INDEX work_items_leased ON work_items (lease_expires_at) WHERE state = 'leased';
CREATE INDEX work_items_queue ON work_items (queue, state);

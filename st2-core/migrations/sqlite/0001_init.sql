-- st2 embedded store, schema version 1.
-- Every table keeps the full record as JSON text in `doc` plus indexed columns for what the
-- listings filter and sort on. Timestamps are integer microseconds since the epoch.

CREATE TABLE trigger_instances (
    seq INTEGER PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    trigger_ref TEXT NOT NULL,
    trigger_type TEXT,
    status TEXT NOT NULL,
    occurrence_time INTEGER NOT NULL,
    doc TEXT NOT NULL
);
CREATE INDEX trigger_instances_time ON trigger_instances (occurrence_time, id);
CREATE INDEX trigger_instances_trigger ON trigger_instances (trigger_ref, occurrence_time);
CREATE INDEX trigger_instances_type ON trigger_instances (trigger_type, occurrence_time)
    WHERE trigger_type IS NOT NULL;
CREATE INDEX trigger_instances_status ON trigger_instances (status, occurrence_time);

-- `seq` is the creation order: children of an execution come back in it.
-- No index on `runner`: few runners exist, so a runner filter walks `executions_start` (newest
-- first) and stops at the page's end; every index costs each insert a B-tree update.
CREATE TABLE executions (
    seq INTEGER PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    revision INTEGER NOT NULL,
    action_ref TEXT NOT NULL,
    status TEXT NOT NULL,
    parent TEXT,
    username TEXT,
    runner TEXT,
    rule TEXT,
    trigger_ref TEXT,
    trigger_type TEXT,
    trigger_instance TEXT,
    start_timestamp INTEGER NOT NULL,
    end_timestamp INTEGER,
    doc TEXT NOT NULL
);
CREATE INDEX executions_start ON executions (start_timestamp, id);
CREATE INDEX executions_action ON executions (action_ref, start_timestamp);
CREATE INDEX executions_status ON executions (status, start_timestamp);
CREATE INDEX executions_parent ON executions (parent, seq) WHERE parent IS NOT NULL;
CREATE INDEX executions_user ON executions (username, start_timestamp) WHERE username IS NOT NULL;
CREATE INDEX executions_rule ON executions (rule, start_timestamp) WHERE rule IS NOT NULL;
CREATE INDEX executions_trigger ON executions (trigger_ref, start_timestamp)
    WHERE trigger_ref IS NOT NULL;
CREATE INDEX executions_trigger_type ON executions (trigger_type, start_timestamp)
    WHERE trigger_type IS NOT NULL;
CREATE INDEX executions_trigger_instance ON executions (trigger_instance, start_timestamp)
    WHERE trigger_instance IS NOT NULL;

-- AUTOINCREMENT: a chunk's seq is never reused, even after a purge.
CREATE TABLE execution_output (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    execution_id TEXT NOT NULL,
    action_ref TEXT NOT NULL,
    runner_ref TEXT NOT NULL,
    timestamp INTEGER NOT NULL,
    output_type TEXT NOT NULL,
    data TEXT NOT NULL
);
CREATE INDEX execution_output_execution ON execution_output (execution_id, seq);
CREATE INDEX execution_output_time ON execution_output (timestamp);

CREATE TABLE rule_enforcements (
    seq INTEGER PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    rule_ref TEXT NOT NULL,
    rule_id TEXT,
    execution_id TEXT,
    trigger_instance_id TEXT NOT NULL,
    enforced_at INTEGER NOT NULL,
    doc TEXT NOT NULL
);
CREATE INDEX rule_enforcements_time ON rule_enforcements (enforced_at, id);
CREATE INDEX rule_enforcements_rule_ref ON rule_enforcements (rule_ref, enforced_at);
CREATE INDEX rule_enforcements_rule_id ON rule_enforcements (rule_id, enforced_at)
    WHERE rule_id IS NOT NULL;
CREATE INDEX rule_enforcements_execution ON rule_enforcements (execution_id)
    WHERE execution_id IS NOT NULL;
CREATE INDEX rule_enforcements_trigger_instance ON rule_enforcements (trigger_instance_id);

CREATE TABLE key_values (
    seq INTEGER PRIMARY KEY,
    id TEXT NOT NULL,
    scope TEXT NOT NULL,
    name TEXT NOT NULL,
    expire_timestamp INTEGER,
    doc TEXT NOT NULL,
    UNIQUE (scope, name)
);
CREATE INDEX key_values_expiry ON key_values (expire_timestamp)
    WHERE expire_timestamp IS NOT NULL;

CREATE TABLE tokens (
    seq INTEGER PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    token_hash TEXT NOT NULL UNIQUE,
    expiry INTEGER NOT NULL,
    doc TEXT NOT NULL
);
CREATE INDEX tokens_expiry ON tokens (expiry);

CREATE TABLE api_keys (
    seq INTEGER PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    key_hash TEXT NOT NULL UNIQUE,
    created_at INTEGER NOT NULL,
    doc TEXT NOT NULL
);
CREATE INDEX api_keys_created ON api_keys (created_at, id);

CREATE TABLE workflows (
    seq INTEGER PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    execution_id TEXT NOT NULL,
    revision INTEGER NOT NULL,
    doc TEXT NOT NULL
);
CREATE INDEX workflows_execution ON workflows (execution_id, seq);

-- `seq` is the creation order; replacing a task keeps it.
CREATE TABLE workflow_tasks (
    seq INTEGER PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    workflow_id TEXT NOT NULL,
    doc TEXT NOT NULL
);
CREATE INDEX workflow_tasks_workflow ON workflow_tasks (workflow_id, seq);

CREATE TABLE inquiries (
    seq INTEGER PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    status TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    doc TEXT NOT NULL
);
CREATE INDEX inquiries_created ON inquiries (created_at, id);
CREATE INDEX inquiries_status ON inquiries (status, created_at);

CREATE TABLE traces (
    seq INTEGER PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    trace_tag TEXT NOT NULL,
    start_timestamp INTEGER NOT NULL,
    doc TEXT NOT NULL
);
CREATE INDEX traces_start ON traces (start_timestamp, id);
CREATE INDEX traces_tag ON traces (trace_tag, start_timestamp);

-- Which objects a trace holds, for the `execution` / `rule` / `trigger_instance` filters.
CREATE TABLE trace_components (
    trace_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    object_id TEXT NOT NULL
);
CREATE INDEX trace_components_object ON trace_components (kind, object_id);
CREATE INDEX trace_components_trace ON trace_components (trace_id);

-- The work queue. `state`: 0 ready, 1 leased. AUTOINCREMENT: ids are never reused.
CREATE TABLE work_items (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    queue TEXT NOT NULL,
    payload TEXT NOT NULL,
    required_tag TEXT,
    not_before INTEGER NOT NULL,
    enqueued_at INTEGER NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    state INTEGER NOT NULL DEFAULT 0,
    fence INTEGER,
    lease_expires_at INTEGER,
    worker TEXT
);
-- Ready items only: a claim takes an item out of it and a finish does not touch it.
CREATE INDEX work_items_claim ON work_items (queue, not_before, id) WHERE state = 0;
CREATE INDEX work_items_leases ON work_items (lease_expires_at) WHERE state = 1;

-- The store-wide fence counter: every claim takes fences above every fence issued before.
CREATE TABLE queue_fence (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    value INTEGER NOT NULL
);
INSERT INTO queue_fence (id, value) VALUES (1, 0);

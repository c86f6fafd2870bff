-- A trace's components, split by how they are read:
--
-- * `trace_links`: which objects a trace holds, for the `execution` / `rule` /
--   `trigger_instance` filters; one row per object and trace, whether the component came with
--   the trace's creation (its doc holds those) or was appended later. `WITHOUT ROWID`: the
--   key is the row, one B-tree entry each (the components a trace is created with cost one
--   entry instead of the three of `trace_components`, a rowid table with two indexes).
-- * `trace_appended`: the components appended after creation, in the order added (their
--   rowid), with their JSON. A rowid table: the rows go at its end however many traces grow
--   at once, and the index by trace holds only the key.
CREATE TABLE trace_links (
    kind TEXT NOT NULL,
    object_id TEXT NOT NULL,
    trace_id TEXT NOT NULL,
    PRIMARY KEY (kind, object_id, trace_id)
) WITHOUT ROWID;

CREATE TABLE trace_appended (
    seq INTEGER PRIMARY KEY,
    trace_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    doc TEXT NOT NULL
);
CREATE INDEX trace_appended_trace ON trace_appended (trace_id, seq);

INSERT OR IGNORE INTO trace_links (kind, object_id, trace_id)
    SELECT kind, object_id, trace_id FROM trace_components;
INSERT INTO trace_appended (seq, trace_id, kind, doc)
    SELECT rowid, trace_id, kind, doc FROM trace_components WHERE doc IS NOT NULL ORDER BY rowid;
DROP TABLE trace_components;

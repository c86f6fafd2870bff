-- A trace's components in two tables keyed by how they are read, each row one B-tree entry
-- (the rowid table of `trace_components` and its two indexes cost three per component):
--
-- * `trace_links`: which objects a trace holds, for the `execution` / `rule` /
--   `trigger_instance` filters; one row per object and trace, whether the component came with
--   the trace's creation (its doc holds those) or was appended later.
-- * `trace_appended`: the components appended after creation, numbered in the order added.
CREATE TABLE trace_links (
    kind TEXT NOT NULL,
    object_id TEXT NOT NULL,
    trace_id TEXT NOT NULL,
    PRIMARY KEY (kind, object_id, trace_id)
) WITHOUT ROWID;

CREATE TABLE trace_appended (
    trace_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    kind TEXT NOT NULL,
    doc TEXT NOT NULL,
    PRIMARY KEY (trace_id, seq)
) WITHOUT ROWID;

INSERT OR IGNORE INTO trace_links (kind, object_id, trace_id)
    SELECT kind, object_id, trace_id FROM trace_components;
INSERT INTO trace_appended (trace_id, seq, kind, doc)
    SELECT trace_id, row_number() OVER (PARTITION BY trace_id ORDER BY rowid), kind, doc
    FROM trace_components WHERE doc IS NOT NULL;
DROP TABLE trace_components;

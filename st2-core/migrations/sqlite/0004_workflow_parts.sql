-- A workflow's state in named parts (a conductor's task entries and contexts, a runner's
-- children), so that saving after an event writes only the parts that changed.
CREATE TABLE workflow_parts (
    workflow_id TEXT NOT NULL,
    key TEXT NOT NULL,
    doc TEXT NOT NULL,
    PRIMARY KEY (workflow_id, key)
) WITHOUT ROWID;

-- Components appended to a trace after its creation are rows of their own, in the order added
-- (the trace's doc keeps the components it was created with): appending one is an insert,
-- not a rewrite of a document that grows with every task of a workflow.
ALTER TABLE trace_components ADD COLUMN doc TEXT;

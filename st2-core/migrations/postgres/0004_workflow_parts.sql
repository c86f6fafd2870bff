-- A workflow's state in named parts (a conductor's task entries and contexts, a runner's
-- children), so that saving after an event writes only the parts that changed.
CREATE TABLE workflow_parts (
    workflow_id text COLLATE "C" NOT NULL,
    key         text COLLATE "C" NOT NULL,
    doc         text NOT NULL,
    PRIMARY KEY (workflow_id, key)
);

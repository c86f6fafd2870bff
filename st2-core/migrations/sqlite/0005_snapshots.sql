-- What an execution ran (its action, runner type, rule, trigger and trigger type as the API
-- shows them), kept once per content under a hash of it: an execution's document holds
-- `{"$snapshot": KEY}` in their place. Documents written before hold the snapshots themselves
-- and read as they always did.
CREATE TABLE snapshots (
    key TEXT PRIMARY KEY,
    doc TEXT NOT NULL
) WITHOUT ROWID;

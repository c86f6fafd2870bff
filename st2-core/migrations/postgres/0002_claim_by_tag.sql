-- Items parked for a tag no worker carries should not be scanned by every claim: an index with
-- the tag before the claim order, beside the one without it.
CREATE INDEX work_items_ready_tag ON work_items (queue, required_tag, not_before, id) WHERE state = 'ready';

-- Workers without tags claim ready items without a required tag: index the tag before the
-- claim order, so items parked for a tag no worker carries are not scanned by every claim.
-- (The index without the tag stays for workers that carry tags.)
CREATE INDEX work_items_claim_untagged ON work_items (queue, required_tag, not_before, id) WHERE state = 0;

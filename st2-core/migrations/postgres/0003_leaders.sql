-- Roles one node at a time leads (garbage collection, timers): who holds each and until when.
CREATE TABLE leaders (
    role TEXT PRIMARY KEY,
    holder TEXT NOT NULL,
    expires_at BIGINT NOT NULL
);

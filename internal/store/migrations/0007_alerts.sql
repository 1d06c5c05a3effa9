-- Alerts: a durable queue of webhook deliveries. The dispatcher follows the
-- audit log (alert_cursor is the last event it looked at) and enqueues one
-- delivery per matching alert in the same transaction that moves the cursor,
-- so an event is neither missed nor enqueued twice across restarts.
CREATE TABLE alert_cursor (
	id INTEGER PRIMARY KEY CHECK (id = 1),
	last_event_id INTEGER NOT NULL
);

CREATE TABLE alert_deliveries (
	id INTEGER PRIMARY KEY AUTOINCREMENT,
	alert TEXT NOT NULL,              -- alerts[].name
	event_id INTEGER NOT NULL,        -- audit_events.id that fired it
	body BLOB NOT NULL,               -- the exact request body
	state TEXT NOT NULL,              -- pending | delivered | failed
	attempts INTEGER NOT NULL DEFAULT 0,
	next_attempt INTEGER NOT NULL,    -- unix nanoseconds
	last_error TEXT NOT NULL DEFAULT '',
	created INTEGER NOT NULL,         -- unix nanoseconds
	UNIQUE (alert, event_id)
);
CREATE INDEX alert_deliveries_due ON alert_deliveries(state, next_attempt);

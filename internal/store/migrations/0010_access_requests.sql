-- Just-in-time access requests: a user asks for a requestable role for a
-- while with a reason; reviewers approve or deny. An approved request is a
-- grant until expires. States: pending, approved, denied, expired.
CREATE TABLE access_requests (
	id TEXT PRIMARY KEY,
	user_name TEXT NOT NULL,
	role TEXT NOT NULL,
	reason TEXT NOT NULL,
	duration INTEGER NOT NULL,          -- seconds asked for
	state TEXT NOT NULL,
	created INTEGER NOT NULL,           -- unix seconds
	decided INTEGER NOT NULL DEFAULT 0, -- approved or denied at
	expires INTEGER NOT NULL DEFAULT 0, -- grant end (approved) or pending end
	denied_by TEXT NOT NULL DEFAULT '',
	note TEXT NOT NULL DEFAULT ''       -- reviewer's reason for a denial
);
CREATE INDEX access_requests_user ON access_requests(user_name, created);
CREATE INDEX access_requests_state ON access_requests(state, expires);
-- One row per reviewer who approved a request.
CREATE TABLE access_approvals (
	request_id TEXT NOT NULL REFERENCES access_requests(id),
	approver TEXT NOT NULL,
	created INTEGER NOT NULL,
	PRIMARY KEY (request_id, approver)
);

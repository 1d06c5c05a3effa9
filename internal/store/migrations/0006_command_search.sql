-- "Command contains" on the sessions page: a trigram full-text index over
-- recorded command texts (SQLite FTS5), so a substring search of 3 or more
-- characters reads the index instead of scanning every command. The index
-- keeps its own copy of the text (not an external-content table: the rowids
-- of recording_commands are implicit and may change on VACUUM). Triggers keep
-- it in step with recording_commands; existing rows are copied in here.
-- recording_id is indexed too, so deleting a recording's commands finds
-- their rows through the index rather than by scanning.
CREATE VIRTUAL TABLE recording_commands_fts USING fts5(
	recording_id,
	seq UNINDEXED,
	text,
	tokenize = 'trigram'
);
INSERT INTO recording_commands_fts(recording_id, seq, text) SELECT recording_id, seq, text FROM recording_commands;
CREATE TRIGGER recording_commands_fts_insert AFTER INSERT ON recording_commands BEGIN
	INSERT INTO recording_commands_fts(recording_id, seq, text) VALUES (new.recording_id, new.seq, new.text);
END;
CREATE TRIGGER recording_commands_fts_delete AFTER DELETE ON recording_commands BEGIN
	DELETE FROM recording_commands_fts WHERE rowid IN (SELECT rowid FROM recording_commands_fts
		WHERE recording_id MATCH '"' || replace(old.recording_id, '"', '""') || '"' AND recording_id = old.recording_id AND seq = old.seq);
END;
CREATE TRIGGER recording_commands_fts_update AFTER UPDATE OF text ON recording_commands BEGIN
	DELETE FROM recording_commands_fts WHERE rowid IN (SELECT rowid FROM recording_commands_fts
		WHERE recording_id MATCH '"' || replace(old.recording_id, '"', '""') || '"' AND recording_id = old.recording_id AND seq = old.seq);
	INSERT INTO recording_commands_fts(recording_id, seq, text) VALUES (new.recording_id, new.seq, new.text);
END;
-- Sessions by recording, to go from matching commands to their sessions.
CREATE INDEX sessions_recording ON sessions(recording_id);

// Package sftptap itemises an sftp subsystem channel: it watches the bytes
// both ways (draft-ietf-secsh-filexfer-02, as OpenSSH speaks it) and reports
// each file operation (open, read and write totals, remove, rename, mkdir,
// rmdir, setstat) with the server's verdict. It never blocks or alters the
// stream, bounds what it buffers, and on a malformed stream stops itemising
// and says so once. scp, sftp and rsync over sftp all pass through it.
package sftptap

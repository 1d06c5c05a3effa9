package target

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"strings"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/api/pkg/stdcopy"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"
	"github.com/pkg/sftp"
	"golang.org/x/crypto/ssh"
)

// maxSFTPFile bounds one file transferred through the gateway's sftp server
// for containers: files are held in the gateway's memory (never on its disk)
// between the sftp client and the Docker archive API.
const maxSFTPFile = 256 << 20

// errSFTPTooLarge is returned for a transfer above maxSFTPFile.
var errSFTPTooLarge = fmt.Errorf("target: file larger than %d MiB cannot be transferred into containers", maxSFTPFile>>20)

// containerFS serves sftp requests from a container's file system through
// the Engine's archive API (file contents, stat) and exec (ls, mkdir, rm,
// rmdir, mv). The archive API runs with the engine's privileges, so it is
// offered to the root login only.
type containerFS struct {
	d *dockerConn
}

func (fs containerFS) handlers() sftp.Handlers {
	return sftp.Handlers{FileGet: fs, FilePut: fs, FileCmd: fs, FileList: fs}
}

func opCtx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), 5*time.Minute)
}

// Fileread fetches the whole file from the container into memory.
func (fs containerFS) Fileread(r *sftp.Request) (io.ReaderAt, error) {
	ctx, cancel := opCtx()
	defer cancel()
	res, err := fs.d.cli.CopyFromContainer(ctx, fs.d.id, client.CopyFromContainerOptions{SourcePath: r.Filepath})
	if err != nil {
		return nil, fsError(err)
	}
	defer res.Content.Close()
	return readSingleFile(res.Content)
}

// readSingleFile returns the content of the first entry of a tar stream,
// which must be a regular file no larger than maxSFTPFile.
func readSingleFile(r io.Reader) (*bytes.Reader, error) {
	tr := tar.NewReader(r)
	h, err := tr.Next()
	if err != nil {
		return nil, fmt.Errorf("target: reading the container archive: %w", err)
	}
	if h.Typeflag != tar.TypeReg {
		return nil, sftp.ErrSSHFxOpUnsupported // a directory or a special file
	}
	if h.Size > maxSFTPFile {
		return nil, errSFTPTooLarge
	}
	data, err := io.ReadAll(io.LimitReader(tr, maxSFTPFile+1))
	if err != nil {
		return nil, fmt.Errorf("target: reading the container archive: %w", err)
	}
	return bytes.NewReader(data), nil
}

// Filewrite collects the file in memory and copies it into the container
// when the client closes it.
func (fs containerFS) Filewrite(r *sftp.Request) (io.WriterAt, error) {
	return &containerFile{fs: fs, path: r.Filepath}, nil
}

// containerFile is a file being uploaded into a container.
type containerFile struct {
	fs   containerFS
	path string
	buf  []byte
	err  error
}

func (f *containerFile) WriteAt(p []byte, off int64) (int, error) {
	end := off + int64(len(p))
	if off < 0 || end > maxSFTPFile {
		f.err = errSFTPTooLarge
		return 0, f.err
	}
	if end > int64(len(f.buf)) {
		f.buf = append(f.buf, make([]byte, int(end)-len(f.buf))...)
	}
	return copy(f.buf[off:], p), nil
}

// Close writes the file into the container as a one-file tar archive.
func (f *containerFile) Close() error {
	if f.err != nil {
		return f.err
	}
	var tb bytes.Buffer
	tw := tar.NewWriter(&tb)
	h := &tar.Header{Name: path.Base(f.path), Mode: 0o644, Size: int64(len(f.buf)), ModTime: time.Now(), Typeflag: tar.TypeReg}
	if err := tw.WriteHeader(h); err != nil {
		return err
	}
	tw.Write(f.buf)
	if err := tw.Close(); err != nil {
		return err
	}
	ctx, cancel := opCtx()
	defer cancel()
	_, err := f.fs.d.cli.CopyToContainer(ctx, f.fs.d.id, client.CopyToContainerOptions{
		DestinationPath: path.Dir(f.path), Content: &tb})
	return fsError(err)
}

// Filecmd runs directory and rename commands in the container as root.
func (fs containerFS) Filecmd(r *sftp.Request) error {
	var argv []string
	switch r.Method {
	case "Mkdir":
		argv = []string{"mkdir", "--", r.Filepath}
	case "Rmdir":
		argv = []string{"rmdir", "--", r.Filepath}
	case "Remove":
		argv = []string{"rm", "-f", "--", r.Filepath}
	case "Rename":
		argv = []string{"mv", "-f", "--", r.Filepath, r.Target}
	case "Setstat":
		return nil // modes and times are not carried over (docs/containers.md)
	default:
		return sftp.ErrSSHFxOpUnsupported
	}
	_, err := fs.run(argv)
	return err
}

// run executes argv in the container as root without a TTY and returns
// its stdout; a non-zero exit becomes an error carrying stderr.
func (fs containerFS) run(argv []string) (string, error) {
	ctx, cancel := opCtx()
	defer cancel()
	cli := fs.d.cli
	created, err := cli.ExecCreate(ctx, fs.d.id, client.ExecCreateOptions{User: "0", AttachStdout: true, AttachStderr: true, Cmd: argv})
	if err != nil {
		return "", fsError(err)
	}
	att, err := cli.ExecAttach(ctx, created.ID, client.ExecAttachOptions{})
	if err != nil {
		return "", fsError(err)
	}
	defer att.Close()
	var out, errb bytes.Buffer
	stdcopy.StdCopy(&out, &errb, io.LimitReader(att.Reader, 16<<20))
	res, err := cli.ExecInspect(ctx, created.ID, client.ExecInspectOptions{})
	if err != nil {
		return "", fsError(err)
	}
	if res.ExitCode != 0 {
		return "", fmt.Errorf("target: %s: %s", argv[0], strings.TrimSpace(errb.String()))
	}
	return out.String(), nil
}

// Filelist answers List, Stat and Readlink.
func (fs containerFS) Filelist(r *sftp.Request) (sftp.ListerAt, error) {
	switch r.Method {
	case "Stat", "Readlink":
		fi, err := fs.stat(r.Filepath)
		if err != nil {
			return nil, err
		}
		if r.Method == "Readlink" {
			if fi.st.LinkTarget == "" {
				return nil, sftp.ErrSSHFxFailure
			}
			fi.st.Name, fi.raw = fi.st.LinkTarget, true
		}
		return listerAt{fi}, nil
	case "List":
		return fs.list(r.Filepath)
	}
	return nil, sftp.ErrSSHFxOpUnsupported
}

func (fs containerFS) list(dir string) (sftp.ListerAt, error) {
	out, err := fs.run([]string{"ls", "-1A", "--", dir})
	if err != nil {
		return nil, err
	}
	var l listerAt
	for _, name := range strings.Split(out, "\n") {
		if name == "" {
			continue
		}
		if fi, err := fs.stat(path.Join(dir, name)); err == nil {
			l = append(l, fi)
		}
	}
	return l, nil
}

func (fs containerFS) stat(p string) (fileInfo, error) {
	ctx, cancel := opCtx()
	defer cancel()
	res, err := fs.d.cli.ContainerStatPath(ctx, fs.d.id, client.ContainerStatPathOptions{Path: p})
	if err != nil {
		return fileInfo{}, fsError(err)
	}
	return fileInfo{st: res.Stat}, nil
}

// fsError maps engine errors to sftp status codes.
func fsError(err error) error {
	switch {
	case err == nil:
		return nil
	case cerrdefs.IsNotFound(err):
		return os.ErrNotExist
	case cerrdefs.IsPermissionDenied(err):
		return os.ErrPermission
	}
	return err
}

type listerAt []os.FileInfo

func (l listerAt) ListAt(dst []os.FileInfo, off int64) (int, error) {
	if off >= int64(len(l)) {
		return 0, io.EOF
	}
	n := copy(dst, l[off:])
	if n < len(dst) {
		return n, io.EOF
	}
	return n, nil
}

// errSFTPNotRoot explains why other logins get no sftp.
var errSFTPNotRoot = errors.New("sftp is not available in containers for logins other than root: " +
	"the Docker archive API would bypass the container's file permissions; use ssh ... 'cat > FILE' < FILE")

// fileInfo is an os.FileInfo for a path in a container.
type fileInfo struct {
	st  container.PathStat
	raw bool // Name is a link target, not a path
}

func (f fileInfo) Name() string {
	if f.raw {
		return f.st.Name
	}
	return path.Base(f.st.Name)
}
func (f fileInfo) Size() int64        { return f.st.Size }
func (f fileInfo) Mode() os.FileMode  { return f.st.Mode }
func (f fileInfo) ModTime() time.Time { return f.st.Mtime }
func (f fileInfo) IsDir() bool        { return f.st.Mode.IsDir() }
func (f fileInfo) Sys() any           { return nil }

// startSFTP serves sftp on the session from the gateway itself.
func (s *dockerSession) startSFTP() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.execID != "" || s.sftpIn != nil || s.closed {
		return false
	}
	if s.d.login != "root" {
		s.d.opts.Logger.Info("sftp refused for a non-root container login", "container", s.d.name, "login", s.d.login)
		go func() { fmt.Fprintf(s.errW, "gatehouse: %v\r\n", errSFTPNotRoot) }()
		return false
	}
	in, inW := io.Pipe()
	s.sftpIn = inW
	srv := sftp.NewRequestServer(sftpPipe{in, s.outW}, containerFS{d: s.d}.handlers())
	go s.serveSFTP(srv, in)
	return true
}

func (s *dockerSession) serveSFTP(srv *sftp.RequestServer, in *io.PipeReader) {
	err := srv.Serve()
	status := uint32(0)
	if err != nil && !errors.Is(err, io.EOF) {
		s.d.opts.Logger.Warn("container sftp ended", "container", s.d.name, "err", err)
		status = 1
	}
	in.Close()
	s.outW.Close()
	s.errW.Close()
	s.reqs <- &ssh.Request{Type: "exit-status", Payload: ssh.Marshal(struct{ Status uint32 }{status})}
	s.closeReqs()
}

// sftpPipe joins the client's bytes (in) and the session's stdout (out).
type sftpPipe struct {
	in  *io.PipeReader
	out *io.PipeWriter
}

func (p sftpPipe) Read(b []byte) (int, error)  { return p.in.Read(b) }
func (p sftpPipe) Write(b []byte) (int, error) { return p.out.Write(b) }
func (p sftpPipe) Close() error                { return p.in.Close() }

package target

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/client"
	"golang.org/x/crypto/ssh"
)

// DockerOptions says how to reach a Docker Engine.
type DockerOptions struct {
	// Host is the engine endpoint ("unix:///var/run/docker.sock",
	// "tcp://host:2376"). Empty means the client default (DOCKER_HOST or the
	// local socket).
	Host string
	// TLSCA, TLSCert, TLSKey are PEM files for mutual TLS to a TCP endpoint.
	TLSCA, TLSCert, TLSKey string
	// Shell is the interactive shell; empty means /bin/bash, else /bin/sh.
	Shell string
	// Logger; nil means slog.Default().
	Logger *slog.Logger
}

// Errors for container targets.
var (
	ErrContainerNotFound   = errors.New("target: container not found")
	ErrContainerNotRunning = errors.New("target: container is not running")
)

func (o DockerOptions) hostName() string {
	if o.Host == "" {
		return "the local Docker Engine"
	}
	return o.Host
}

func dockerClient(o DockerOptions) (*client.Client, error) {
	var ops []client.Opt
	if o.Host != "" {
		ops = append(ops, client.WithHost(o.Host))
	} else {
		ops = append(ops, client.WithHostFromEnv())
	}
	if o.TLSCA != "" || o.TLSCert != "" {
		ops = append(ops, client.WithTLSClientConfig(o.TLSCA, o.TLSCert, o.TLSKey))
	}
	c, err := client.New(ops...)
	if err != nil {
		return nil, fmt.Errorf("%w: Docker client for %s: %v", ErrUnreachable, o.hostName(), err)
	}
	return c, nil
}

// inspect finds a running container and maps engine errors to ours.
func inspect(ctx context.Context, c *client.Client, o DockerOptions, name string) (client.ContainerInspectResult, error) {
	res, err := c.ContainerInspect(ctx, name, client.ContainerInspectOptions{})
	switch {
	case cerrdefs.IsNotFound(err):
		return res, fmt.Errorf("%w: %q on %s", ErrContainerNotFound, name, o.hostName())
	case err != nil:
		return res, fmt.Errorf("%w: Docker Engine %s: %v", ErrUnreachable, o.hostName(), err)
	case res.Container.State == nil || !res.Container.State.Running:
		return res, fmt.Errorf("%w: %q", ErrContainerNotRunning, name)
	}
	return res, nil
}

// DockerContainerLabels returns the labels of a running container (for
// container_labels role selectors).
func DockerContainerLabels(ctx context.Context, o DockerOptions, name string) (map[string]string, error) {
	c, err := dockerClient(o)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	res, err := inspect(ctx, c, o, name)
	if err != nil {
		return nil, err
	}
	if res.Container.Config == nil {
		return map[string]string{}, nil
	}
	return res.Container.Config.Labels, nil
}

// DialDocker connects to a running container as login. Sessions become
// `docker exec` processes: a shell with a TTY, or `sh -c <command>`.
func DialDocker(ctx context.Context, o DockerOptions, name, login string) (Conn, error) {
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	c, err := dockerClient(o)
	if err != nil {
		return nil, err
	}
	res, err := inspect(ctx, c, o, name)
	if err != nil {
		c.Close()
		return nil, err
	}
	return &dockerConn{cli: c, opts: o, id: res.Container.ID, name: name, login: login,
		sessions: map[*dockerSession]struct{}{}, done: make(chan struct{})}, nil
}

// dockerConn is a target.Conn to one container.
type dockerConn struct {
	cli   *client.Client
	opts  DockerOptions
	id    string
	name  string
	login string

	// mu protects the following.
	mu       sync.Mutex
	sessions map[*dockerSession]struct{}
	closed   bool
	done     chan struct{}
}

func (d *dockerConn) OpenChannel(kind string, _ []byte) (ssh.Channel, <-chan *ssh.Request, error) {
	if kind != "session" {
		return nil, nil, &ssh.OpenChannelError{Reason: ssh.Prohibited,
			Message: "port forwarding is not available for container targets"}
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return nil, nil, &ssh.OpenChannelError{Reason: ssh.ConnectionFailed, Message: "connection closed"}
	}
	s := newDockerSession(d)
	d.sessions[s] = struct{}{}
	return s, s.reqs, nil
}

func (d *dockerConn) forget(s *dockerSession) {
	d.mu.Lock()
	defer d.mu.Unlock()
	delete(d.sessions, s)
}

func (d *dockerConn) Close() error {
	d.mu.Lock()
	if d.closed {
		d.mu.Unlock()
		return nil
	}
	d.closed = true
	sessions := make([]*dockerSession, 0, len(d.sessions))
	for s := range d.sessions {
		sessions = append(sessions, s)
	}
	d.mu.Unlock()
	for _, s := range sessions {
		s.Close()
	}
	close(d.done)
	return d.cli.Close()
}

func (d *dockerConn) Wait() error {
	<-d.done
	return nil
}

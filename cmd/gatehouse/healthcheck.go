package main

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/gatehouse/gatehouse/internal/config"
)

func init() {
	register(command{name: "healthcheck", summary: "exit 0 when the local gateway is ready (/readyz); for container HEALTHCHECK", run: runHealthcheck})
}

// runHealthcheck asks the operations listener of the gateway configured in
// --config whether it is ready. It opens nothing of the gateway's own (no
// database, no key), so it is safe to run next to it at any time.
func runHealthcheck(args []string, stdout, stderr io.Writer) error {
	fs, cfgPath := newFlags("healthcheck", stderr)
	url := fs.String("url", "", "probe this URL instead of http://<metrics.listen>/readyz")
	live := fs.Bool("live", false, "check /healthz (the process serves) instead of /readyz")
	if err := fs.Parse(args); err != nil {
		return errUsage
	}
	if *url == "" {
		cfg, err := config.Load(config.PathFromEnv(*cfgPath))
		if err != nil {
			return err
		}
		if *url, err = readyURL(cfg.Metrics.Listen, *live); err != nil {
			return err
		}
	}
	c := &http.Client{Timeout: 8 * time.Second}
	resp, err := c.Get(*url)
	if err != nil {
		return fmt.Errorf("not ready: %v", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("not ready (HTTP %d): %s", resp.StatusCode, strings.Join(strings.Fields(strings.ReplaceAll(string(body), "\n", "; ")), " "))
	}
	fmt.Fprint(stdout, string(body))
	return nil
}

// readyURL is the probe URL on the operations listener; a wildcard listen
// address is probed on loopback.
func readyURL(listen string, live bool) (string, error) {
	if listen == "" {
		return "", errors.New("metrics.listen is not set: the probe needs the operations listener (e.g. metrics: {listen: \"127.0.0.1:9464\"})")
	}
	host, port, err := net.SplitHostPort(listen)
	if err != nil {
		return "", fmt.Errorf("metrics.listen %q: %v", listen, err)
	}
	if host == "" || host == "0.0.0.0" || host == "::" {
		host = "127.0.0.1"
	}
	path := "/readyz"
	if live {
		path = "/healthz"
	}
	return "http://" + net.JoinHostPort(host, port) + path, nil
}

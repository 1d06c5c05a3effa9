package main

import (
	"bytes"
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse/gatehouse/internal/app"
	"github.com/gatehouse/gatehouse/internal/config"
)

func TestHealthcheckCommand(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "gatehouse.yaml")
	conf := "data_dir: " + filepath.Join(dir, "data") + "\nssh: {listen: \"127.0.0.1:0\"}\nweb: {listen: \"127.0.0.1:0\"}\n"
	os.WriteFile(path, []byte(conf), 0o600)
	run1 := func(args ...string) (int, string) {
		var out, errb bytes.Buffer
		code := run(append([]string{"healthcheck", "--config", path}, args...), &out, &errb)
		return code, out.String() + errb.String()
	}
	if code, out := run1(); code != 1 || !strings.Contains(out, "gatehouse healthcheck: metrics.listen is not set") {
		t.Fatalf("without metrics.listen: %d %q", code, out)
	}

	os.WriteFile(path, []byte(conf+"metrics: {listen: \"127.0.0.1:0\"}\n"), 0o600)
	cfg, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	a, err := app.Start(cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		a.Close(ctx)
	}()
	url := "http://" + a.MetricsAddr() + "/readyz"
	if code, out := run1("--url", url); code != 0 || out != "ok\n" {
		t.Fatalf("ready gateway: %d %q", code, out)
	}
	os.RemoveAll(cfg.Recording.Dir)
	code, out := run1("--url", url)
	if code != 1 || !strings.HasPrefix(out, "gatehouse healthcheck: not ready (HTTP 503): not ready; recordings: recorder: recordings store not writable:") {
		t.Fatalf("gateway without its recordings store: %d %q", code, out)
	}
	if code, out := run1("--live", "--url", "http://"+a.MetricsAddr()+"/healthz"); code != 0 || out != "ok\n" {
		t.Fatalf("liveness: %d %q", code, out)
	}
}

func TestReadyURL(t *testing.T) {
	tests := []struct{ listen, want string }{
		{"0.0.0.0:9464", "http://127.0.0.1:9464/readyz"},
		{":9464", "http://127.0.0.1:9464/readyz"},
		{"[::]:9464", "http://127.0.0.1:9464/readyz"},
		{"10.1.2.3:9464", "http://10.1.2.3:9464/readyz"},
	}
	for _, tt := range tests {
		if got, err := readyURL(tt.listen, false); err != nil || got != tt.want {
			t.Errorf("readyURL(%q) = %q, %v; want %q", tt.listen, got, err, tt.want)
		}
	}
}

package store

import (
	"context"
	"fmt"
	"log/slog"
	"net/url"
	"path/filepath"
	"strings"
	"time"
)

// OpenURL opens the database database.url names: empty keeps the SQLite file
// gatehouse.db in dataDir, "sqlite:PATH" a SQLite file at PATH, and
// "postgres://..." (or "postgresql://...") a PostgreSQL database. A
// PostgreSQL URL without sslmode gets sslmode=verify-full (TLS, the server's
// certificate checked against the system roots or sslrootcert, and its name
// against the host); an operator-chosen weaker mode is logged as a warning
// at start. Migrations run before it returns.
func OpenURL(ctx context.Context, dbURL, dataDir string, log *slog.Logger) (*DB, error) {
	switch {
	case dbURL == "":
		return Open(filepath.Join(dataDir, "gatehouse.db"))
	case strings.HasPrefix(dbURL, "sqlite:"):
		p := strings.TrimPrefix(dbURL, "sqlite:")
		if p == "" {
			return Open(filepath.Join(dataDir, "gatehouse.db"))
		}
		if !filepath.IsAbs(p) {
			p = filepath.Join(dataDir, p)
		}
		return Open(p)
	case strings.HasPrefix(dbURL, "postgres://"), strings.HasPrefix(dbURL, "postgresql://"):
		u, mode, err := PostgresURL(dbURL)
		if err != nil {
			return nil, err
		}
		if mode != "verify-full" && log != nil {
			log.Warn("store: database.url sslmode is weaker than verify-full: the database connection can be read or altered on the network",
				"sslmode", mode)
		}
		return openPostgresDB(ctx, u)
	default:
		return nil, fmt.Errorf("store: database.url must be empty, sqlite:PATH or postgres://..., not %q", Redact(dbURL))
	}
}

// PostgresURL returns dbURL with sslmode=verify-full added when it names no
// sslmode, and the mode in effect.
func PostgresURL(dbURL string) (string, string, error) {
	u, err := url.Parse(dbURL)
	if err != nil {
		return "", "", fmt.Errorf("store: database.url: not a URL")
	}
	q := u.Query()
	mode := q.Get("sslmode")
	if mode == "" {
		mode = "verify-full"
		q.Set("sslmode", mode)
		u.RawQuery = q.Encode()
	}
	return u.String(), mode, nil
}

// Redact returns a database URL without its password, for messages and logs.
func Redact(dbURL string) string {
	u, err := url.Parse(dbURL)
	if err != nil || u.User == nil {
		if err != nil {
			return "(unparsable URL)"
		}
		return dbURL
	}
	if _, ok := u.User.Password(); ok {
		u.User = url.UserPassword(u.User.Username(), "xxxxx")
	}
	return u.String()
}

func openPostgresDB(ctx context.Context, dbURL string) (*DB, error) {
	sdb, err := openPostgres(dbURL)
	if err != nil {
		return nil, err
	}
	pctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := sdb.PingContext(pctx); err != nil {
		sdb.Close()
		return nil, fmt.Errorf("store: connect to %s: %w", Redact(dbURL), err)
	}
	db := &DB{DB: sdb, engine: Postgres}
	if err := db.migrate(ctx); err != nil {
		sdb.Close()
		return nil, err
	}
	return db, nil
}

package main

import (
	"github.com/gatehouse/gatehouse/internal/app"
	"github.com/gatehouse/gatehouse/internal/config"
	"github.com/gatehouse/gatehouse/internal/secrets"
	"github.com/gatehouse/gatehouse/internal/store"
)

// appEnv is what most subcommands need: the configuration, the database and
// the sealed-secret store. The data directory is created on first use.
type appEnv struct {
	cfg     *config.Config
	db      *store.DB
	secrets *secrets.Store
}

// openEnv loads the configuration at path (see config.PathFromEnv) and opens
// the data directory, database and master key.
func openEnv(path string) (*appEnv, error) {
	cfg, err := config.Load(config.PathFromEnv(path))
	if err != nil {
		return nil, err
	}
	e, err := app.OpenEnv(cfg)
	if err != nil {
		return nil, err
	}
	return &appEnv{cfg: cfg, db: e.DB, secrets: e.Secrets}, nil
}

func (e *appEnv) Close() error { return e.db.Close() }

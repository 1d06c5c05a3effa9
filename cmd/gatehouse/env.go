package main

import (
	"fmt"
	"os"
	"path/filepath"

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
	return openEnvConfig(cfg)
}

func openEnvConfig(cfg *config.Config) (*appEnv, error) {
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("data_dir: %w", err)
	}
	kr, err := secrets.LoadKeyring(cfg.MasterKeyFile)
	if err != nil {
		return nil, err
	}
	db, err := store.Open(filepath.Join(cfg.DataDir, "gatehouse.db"))
	if err != nil {
		return nil, err
	}
	return &appEnv{cfg: cfg, db: db, secrets: secrets.NewStore(db.DB, kr)}, nil
}

func (e *appEnv) Close() error { return e.db.Close() }

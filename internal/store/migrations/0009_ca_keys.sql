-- CA key rotation: every key a CA has had, with its state. A CA without rows
-- still signs with its original key (sealed as ca/<kind>). States:
--   next     published (targets/clients trust it), not signing until activate_at
--   active   signing
--   previous replaced by the next key; still published and, for the user CA,
--            still accepted until retired
--   retired  published nowhere, accepted nowhere, its sealed key destroyed
CREATE TABLE ca_keys (
	ca TEXT NOT NULL,                     -- user | session | host
	key_id TEXT NOT NULL,                 -- SHA256 fingerprint of the public key
	secret TEXT NOT NULL,                 -- sealed-secret name of the private key
	state TEXT NOT NULL,
	created INTEGER NOT NULL,             -- unix seconds
	activate_at INTEGER NOT NULL DEFAULT 0,
	retired_at INTEGER NOT NULL DEFAULT 0,
	PRIMARY KEY (ca, key_id)
);

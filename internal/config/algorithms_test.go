package config

import (
	"slices"
	"strings"
	"testing"
)

func TestAlgorithmDefaults(t *testing.T) {
	c, err := Parse("f.yaml", []byte("data_dir: /x\n"))
	if err != nil {
		t.Fatal(err)
	}
	for _, weak := range []string{"diffie-hellman-group14-sha1", "diffie-hellman-group1-sha1", "hmac-sha1", "hmac-sha1-96",
		"hmac-sha2-256", "hmac-sha2-512", "ssh-rsa", "ssh-dss", "ecdh-sha2-nistp256"} {
		for _, l := range [][]string{c.SSH.KeyExchanges, c.SSH.MACs, c.SSH.HostKeyTypes} {
			if slices.Contains(l, weak) {
				t.Errorf("default algorithms include %s", weak)
			}
		}
	}
	for _, want := range []string{"mlkem768x25519-sha256", "curve25519-sha256", "curve25519-sha256@libssh.org"} {
		if !slices.Contains(c.SSH.KeyExchanges, want) {
			t.Errorf("default kex lacks %s", want)
		}
	}
	if !slices.Equal(c.SSH.MACs, []string{"hmac-sha2-256-etm@openssh.com", "hmac-sha2-512-etm@openssh.com"}) {
		t.Errorf("default MACs %v, want the two ETM MACs", c.SSH.MACs)
	}
	if c.SSH.LoginPattern != DefaultLoginPattern || !c.SSH.ValidLogin("root") || c.SSH.ValidLogin("ROOT") {
		t.Errorf("default login pattern %q", c.SSH.LoginPattern)
	}
}

func TestAlgorithmErrors(t *testing.T) {
	tests := []struct {
		name, yaml string
		want       string // the one-line error, exactly (prefix for long lists)
	}{
		{"unknown kex", "ssh:\n  kex: [curve25519-sha256, curve-typo]\n",
			`config: f.yaml:2: ssh.kex: unknown algorithm "curve-typo" (known: mlkem768x25519-sha256, curve25519-sha256,`},
		{"sha1 kex", "ssh:\n  kex: [diffie-hellman-group14-sha1]\n",
			`config: f.yaml:2: ssh.kex: "diffie-hellman-group14-sha1" is weak (SHA-1 or broken) and not accepted; remove it`},
		{"sha1 mac", "ssh:\n  macs: [hmac-sha1]\n",
			`config: f.yaml:2: ssh.macs: "hmac-sha1" is weak (SHA-1 or broken) and not accepted; remove it`},
		{"unknown mac", "ssh:\n  macs: [umac-64@openssh.com]\n",
			`config: f.yaml:2: ssh.macs: unknown algorithm "umac-64@openssh.com" (known: `},
		{"cbc cipher", "ssh:\n  ciphers: [aes128-cbc]\n",
			`config: f.yaml:2: ssh.ciphers: "aes128-cbc" is weak (SHA-1 or broken) and not accepted; remove it`},
		{"ssh-rsa host key", "ssh:\n  host_key_types: [ssh-ed25519, ssh-rsa]\n",
			`config: f.yaml:2: ssh.host_key_types: "ssh-rsa" is weak (SHA-1 or broken) and not accepted; remove it`},
		{"no ed25519 host key", "ssh:\n  host_key_types: [rsa-sha2-512]\n",
			`config: f.yaml:2: ssh.host_key_types: must include ssh-ed25519 or ssh-ed25519-cert-v01@openssh.com: the gateway's host key is Ed25519`},
		{"bad login pattern", "ssh:\n  login_pattern: \"^[a-z$\"\n",
			"config: f.yaml:2: ssh.login_pattern: not a regular expression: error parsing regexp: missing closing ]: `[a-z$`"},
		{"hour-long session certificates", "certificates:\n  session_ttl: 1h\n",
			`config: f.yaml:2: certificates.session_ttl: 1h0m0s: want more than 0 and at most 15m0s (a per-session certificate only has to outlive the target's authentication)`},
		{"negative session_ttl", "certificates:\n  session_ttl: -1m\n",
			`config: f.yaml:2: certificates.session_ttl: -1m0s: want more than 0 and at most 15m0s (a per-session certificate only has to outlive the target's authentication)`},
		{"unanchored login pattern", "ssh:\n  login_pattern: \"[a-z]+\"\n",
			`config: f.yaml:2: ssh.login_pattern: "[a-z]+" must be anchored with ^ and $ (it must match the whole login)`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse("f.yaml", []byte(tt.yaml))
			if err == nil {
				t.Fatal("no error")
			}
			if !strings.HasPrefix(err.Error(), tt.want) || (!strings.HasSuffix(tt.want, " ") && !strings.HasSuffix(tt.want, ",") && err.Error() != tt.want) {
				t.Fatalf("error\n got: %s\nwant: %s", err, tt.want)
			}
			if strings.Contains(err.Error(), "\n") {
				t.Fatal("error is not one line")
			}
		})
	}
}

func TestCustomLoginPattern(t *testing.T) {
	c, err := Parse("f.yaml", []byte("ssh:\n  login_pattern: \"^[a-z][a-z0-9]*(-adm)?$\"\n"))
	if err != nil {
		t.Fatal(err)
	}
	for login, want := range map[string]bool{"alice": true, "alice-adm": true, "Alice": false, "alice-admin": false, "_x": false} {
		if got := c.SSH.ValidLogin(login); got != want {
			t.Errorf("ValidLogin(%q) = %v, want %v", login, got, want)
		}
	}
}

func TestPinnedHostKeyTypeMustBeAllowed(t *testing.T) {
	const ecdsaKey = "ecdsa-sha2-nistp256 AAAAE2VjZHNhLXNoYTItbmlzdHAyNTYAAAAIbmlzdHAyNTYAAABBBEmKSENjQEezOmxkZMy7opKgwFB9nkt5YRrYMjNuG5N87uRgg6CLrbo5wAdT/y6v0mKV0U2w0WZ2YB/++Tpockg="
	yaml := "targets:\n  - name: db-1\n    address: \"10.0.0.1:22\"\n    host_key: \"" + ecdsaKey + "\"\n"
	_, err := Parse("f.yaml", []byte(yaml))
	want := "config: f.yaml:4: targets[0].host_key: ecdsa-sha2-nistp256 keys are not allowed by ssh.host_key_types; pin the target's ssh-ed25519 key (ssh-keyscan -t ed25519 HOST) or add ecdsa-sha2-nistp256 to ssh.host_key_types"
	if err == nil || err.Error() != want {
		t.Fatalf("error\n got: %v\nwant: %s", err, want)
	}
	if _, err := Parse("f.yaml", []byte("ssh:\n  host_key_types: [ssh-ed25519, ecdsa-sha2-nistp256]\n"+yaml)); err != nil {
		t.Fatalf("ECDSA listed explicitly: %v", err)
	}
}

func TestKnownHostsCALine(t *testing.T) {
	const key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIDmFZZzLTqJ3S86a9dHuEfGXzpsXEWJh4ZvOiiRCe8+B"
	k, err := ParseAuthorizedKey(key)
	if err != nil {
		t.Fatal(err)
	}
	targets := "targets:\n  - {name: db-1, address: \"10.0.0.5:22\", host_key: \"" + key + "\"}\n  - {name: web-1, kind: docker}\n"
	tests := []struct {
		name, yaml, sshAddr, want string
	}{
		{"public url and port", "web: {public_url: \"https://GW.example.com:8443\"}\nssh: {listen: \"0.0.0.0:2222\"}\n" + targets, "",
			"@cert-authority gw.example.com,[gw.example.com]:2222,db-1,web-1 " + key + " gatehouse-host-ca"},
		{"port 22", "web: {public_url: \"https://gw.example.com\"}\nssh: {listen: \"0.0.0.0:22\"}\n" + targets, "",
			"@cert-authority gw.example.com,db-1,web-1 " + key + " gatehouse-host-ca"},
		{"listener's real port", "web: {listen: \"127.0.0.1:0\"}\nssh: {listen: \"127.0.0.1:0\"}\n", "127.0.0.1:41234",
			"@cert-authority 127.0.0.1,[127.0.0.1]:41234 " + key + " gatehouse-host-ca"},
		{"nothing specific", "ssh: {listen: \"0.0.0.0:2222\"}\n", "",
			"@cert-authority localhost,[localhost]:2222,127.0.0.1,[127.0.0.1]:2222 " + key + " gatehouse-host-ca"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Parse("f.yaml", []byte(tt.yaml))
			if err != nil {
				t.Fatal(err)
			}
			if got := c.KnownHostsCALine(k, tt.sshAddr); got != tt.want {
				t.Fatalf("\n got: %s\nwant: %s", got, tt.want)
			}
		})
	}
}

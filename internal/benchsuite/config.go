package benchsuite

import (
	"fmt"
	"net"
	"os"

	"go.yaml.in/yaml/v3"
)

// serverConfig is what the bench configuration varies: where the server
// keeps its data, logs and listens. Everything else is fixed in configYAML.
type serverConfig struct {
	DataDir, LogFile string
	SMTP, POP3, MGMT string
	// MaxConns is both limits.max_connections and the per-IP limit: the
	// conns scenario opens every connection from 127.0.0.1.
	MaxConns int
}

// Hostname is the server's name in the bench configuration; the suite's own
// maildir.Store uses it too, as the server's does (cmd/buzon/serve.go).
const Hostname = "bench.localhost"

// Domain is the mail domain of the bench accounts.
const Domain = "localhost"

// configYAML renders the bench configuration (keys: docs/configuration.md).
func configYAML(c serverConfig) ([]byte, error) {
	doc := map[string]any{
		"hostname":       Hostname,
		"domains":        []string{Domain},
		"data_dir":       c.DataDir,
		"shutdown_grace": "5s",
		"smtp":           map[string]any{"listen": c.SMTP},
		"pop3":           map[string]any{"listen": c.POP3},
		"mgmt":           map[string]any{"listen": c.MGMT},
		"limits": map[string]any{
			"max_connections":        c.MaxConns,
			"max_connections_per_ip": c.MaxConns,
			// Long enough for every scenario: the conns clients never
			// log in and the longest run holds connections for minutes
			// at most.
			"login_timeout": "10m",
			"idle_timeout":  "10m",
		},
		// warn: a log line per session would cost the server more than
		// the protocol work measured.
		"log": map[string]any{"level": "warn", "file": c.LogFile},
	}
	out, err := yaml.Marshal(doc)
	if err != nil {
		return nil, fmt.Errorf("bench config: %w", err)
	}
	return out, nil
}

func writeConfig(path string, c serverConfig) error {
	data, err := configYAML(c)
	if err != nil {
		return err
	}
	if err := os.WriteFile(path, data, 0o600); err != nil {
		return fmt.Errorf("bench config: %w", err)
	}
	return nil
}

// freeAddrs returns n distinct loopback addresses whose ports were free a
// moment ago. Every listener stays open until all n are chosen, so the
// kernel cannot hand out one port twice.
func freeAddrs(n int) ([]string, error) {
	ls := make([]net.Listener, 0, n)
	defer func() {
		for _, l := range ls {
			_ = l.Close()
		}
	}()
	addrs := make([]string, 0, n)
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("choose a free port: %w", err)
		}
		ls = append(ls, l)
		addrs = append(addrs, l.Addr().String())
	}
	return addrs, nil
}

// Package config loads buzon's configuration: a YAML file, BUZON_ environment
// variables and command-line flags through viper (flags > env > file >
// defaults), then the run-time values of data_dir/state.json (SPEC §3).
package config

import "time"

// Config is the validated, effective configuration.
type Config struct {
	Hostname      string
	Domains       []string
	Aliases       map[string][]string // local part → user(s)
	DataDir       string
	ShutdownGrace time.Duration

	SMTP      SMTP
	POP3      POP3
	MGMT      MGMT
	TLS       TLS
	Auth      Auth
	Limits    Limits
	Transform Transform
	Log       Log
	Admin     Admin
}

type SMTP struct {
	Listen           []string
	SubmissionListen []string
	TLSListen        []string
	MaxMessageBytes  int64
	MaxRecipients    int
	MaxLineLength    int
	MinFreeBytes     int64
}

type POP3 struct {
	Listen    []string
	TLSListen []string
}

type MGMT struct {
	Listen []string
}

type TLS struct {
	CertFile string
	KeyFile  string
}

// Enabled reports whether a certificate is configured.
func (t TLS) Enabled() bool { return t.CertFile != "" && t.KeyFile != "" }

type Auth struct {
	AllowInsecure bool
	TrustLoopback bool
}

type Limits struct {
	MaxConnections      int
	MaxConnectionsPerIP int
	MaxUsers            int
	IdleTimeout         time.Duration
	LoginTimeout        time.Duration
}

type Transform struct {
	Command       []string
	Enabled       bool
	Timeout       time.Duration
	MaxConcurrent int
}

type Log struct {
	Level  string
	Format string
	File   string
}

type Admin struct {
	Password string
}

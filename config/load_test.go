package config

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/buzon-mail/buzon/internal/testcert"
	"github.com/spf13/pflag"
)

// testFlags mirrors the serve flags of cmd/buzon.
func testFlags(t *testing.T, args ...string) *pflag.FlagSet {
	t.Helper()
	fs := pflag.NewFlagSet("serve", pflag.ContinueOnError)
	fs.StringArrayP("domain", "d", nil, "")
	fs.StringSliceP("smtp-listen", "s", nil, "")
	fs.StringSlice("pop3-listen", nil, "")
	fs.StringSliceP("mgmt-listen", "p", nil, "")
	fs.StringP("log-file", "l", "", "")
	fs.StringP("log-level", "L", "", "")
	fs.StringP("transform", "t", "", "")
	fs.String("data-dir", "", "")
	if err := fs.Parse(args); err != nil {
		t.Fatal(err)
	}
	return fs
}

func writeFile(t *testing.T, yaml string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "buzon.yaml")
	if err := os.WriteFile(p, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func fixedHost() (string, error) { return "mx.example.test", nil }

// loadT loads yaml (none if empty) with flags, without searching the
// machine's own paths; data_dir defaults into a temp dir.
func loadT(t *testing.T, yaml string, flags ...string) (*Config, *Meta, []string, error) {
	t.Helper()
	opts := Options{SearchPaths: []string{}, Flags: testFlags(t, flags...), Hostname: fixedHost}
	if yaml != "" {
		opts.File = writeFile(t, yaml)
	}
	return Load(opts)
}

func TestDefaults(t *testing.T) {
	t.Chdir(t.TempDir())
	cfg, meta, warns, err := loadT(t, "")
	if err != nil {
		t.Fatal(err)
	}
	if len(warns) != 0 {
		t.Errorf("warnings on defaults: %v", warns)
	}
	want := &Config{
		Hostname:      "mx.example.test",
		Domains:       []string{"localhost"},
		Aliases:       map[string][]string{"postmaster": {"admin"}, "abuse": {"admin"}},
		DataDir:       "var",
		ShutdownGrace: 30 * time.Second,
		SMTP: SMTP{Listen: []string{"127.0.0.1:2525"}, SubmissionListen: []string{}, TLSListen: []string{},
			MaxMessageBytes: 26214400, MaxRecipients: 100, MaxLineLength: 65536, MinFreeBytes: 104857600},
		POP3:      POP3{Listen: []string{"127.0.0.1:1110"}, TLSListen: []string{}},
		MGMT:      MGMT{Listen: []string{"127.0.0.1:6000"}},
		Auth:      Auth{TrustLoopback: true},
		Limits:    Limits{MaxConnections: 1000, MaxConnectionsPerIP: 20, MaxUsers: 10000, IdleTimeout: 10 * time.Minute, LoginTimeout: time.Minute},
		Transform: Transform{Timeout: 30 * time.Second, MaxConcurrent: 4},
		Log:       Log{Level: "info", Format: "text"},
	}
	if !reflect.DeepEqual(cfg, want) {
		t.Errorf("defaults:\n got %+v\nwant %+v", cfg, want)
	}
	if meta.File != "" {
		t.Errorf("file = %q, want none", meta.File)
	}
	for _, k := range Keys() {
		if meta.Sources[k] != FromDefault {
			t.Errorf("source of %s = %q, want default", k, meta.Sources[k])
		}
	}
}

func TestSearchPaths(t *testing.T) {
	dir := t.TempDir()
	second := filepath.Join(dir, "etc.yaml")
	os.WriteFile(second, []byte("hostname: second.test\n"), 0o600)
	cfg, meta, _, err := Load(Options{SearchPaths: []string{filepath.Join(dir, "missing.yaml"), second}, Hostname: fixedHost, NoRuntime: true})
	if err != nil || cfg.Hostname != "second.test" || meta.File != second {
		t.Fatalf("got %v %v %v", cfg, meta, err)
	}
	if _, _, _, err := Load(Options{File: filepath.Join(dir, "missing.yaml")}); err == nil {
		t.Fatal("a missing --config file must be an error")
	}
}

func TestFileTooLarge(t *testing.T) {
	p := filepath.Join(t.TempDir(), "big.yaml")
	big := "# " + strings.Repeat("x", MaxFileSize) + "\n"
	if err := os.WriteFile(p, []byte(big), 0o600); err != nil {
		t.Fatal(err)
	}
	_, _, _, err := Load(Options{File: p, NoRuntime: true})
	if err == nil || !strings.Contains(err.Error(), "larger than") {
		t.Fatalf("err = %v", err)
	}
	// A directory given as the file is an error too, not a hang.
	if _, _, _, err := Load(Options{File: t.TempDir(), NoRuntime: true}); err == nil {
		t.Fatal("a directory was read as a config file")
	}
}

func TestPrecedence(t *testing.T) {
	file := `
domains: [file.test]
smtp:
  listen: 127.0.0.1:1001
mgmt:
  listen: 127.0.0.1:3001
log:
  level: warn
transform:
  command: [file-cmd]
`
	tests := []struct {
		name    string
		env     map[string]string
		flags   []string
		key     string
		get     func(*Config) any
		want    any
		wantSrc Source
	}{
		{"default", nil, nil, "pop3.listen", func(c *Config) any { return c.POP3.Listen }, []string{"127.0.0.1:1110"}, FromDefault},
		{"file beats default", nil, nil, "smtp.listen", func(c *Config) any { return c.SMTP.Listen }, []string{"127.0.0.1:1001"}, FromFile},
		{"env beats file", map[string]string{"BUZON_SMTP_LISTEN": "127.0.0.1:1002"}, nil, "smtp.listen", func(c *Config) any { return c.SMTP.Listen }, []string{"127.0.0.1:1002"}, FromEnv},
		{"flag beats env", map[string]string{"BUZON_SMTP_LISTEN": "127.0.0.1:1002"}, []string{"-s", "127.0.0.1:1003"}, "smtp.listen", func(c *Config) any { return c.SMTP.Listen }, []string{"127.0.0.1:1003"}, FromFlag},
		{"env beats default", map[string]string{"BUZON_LIMITS_MAX_CONNECTIONS": "7"}, nil, "limits.max_connections", func(c *Config) any { return c.Limits.MaxConnections }, 7, FromEnv},
		{"env level beats file", map[string]string{"BUZON_LOG_LEVEL": "DEBUG"}, nil, "log.level", func(c *Config) any { return c.Log.Level }, "debug", FromEnv},
		{"flag level beats env", map[string]string{"BUZON_LOG_LEVEL": "debug"}, []string{"-L", "error"}, "log.level", func(c *Config) any { return c.Log.Level }, "error", FromFlag},
		{"domain flags replace", map[string]string{"BUZON_DOMAINS": "env.test"}, []string{"-d", "a.test", "--domain", "B.test"}, "domains", func(c *Config) any { return c.Domains }, []string{"a.test", "b.test"}, FromFlag},
		{"env domains list", map[string]string{"BUZON_DOMAINS": "x.test, y.test"}, nil, "domains", func(c *Config) any { return c.Domains }, []string{"x.test", "y.test"}, FromEnv},
		{"env admin password", map[string]string{"BUZON_ADMIN_PASSWORD": "s3cret"}, nil, "admin.password", func(c *Config) any { return c.Admin.Password }, "s3cret", FromEnv},
		{"transform flag split", nil, []string{"-t", `/bin/tr "a b" 'c d'`}, "transform.command", func(c *Config) any { return c.Transform.Command }, []string{"/bin/tr", "a b", "c d"}, FromFlag},
		{"transform env split", map[string]string{"BUZON_TRANSFORM_COMMAND": `x\ y z`}, nil, "transform.command", func(c *Config) any { return c.Transform.Command }, []string{"x y", "z"}, FromEnv},
		{"bool env", map[string]string{"BUZON_AUTH_TRUST_LOOPBACK": "false"}, nil, "auth.trust_loopback", func(c *Config) any { return c.Auth.TrustLoopback }, false, FromEnv},
		{"empty env switches off", map[string]string{"BUZON_MGMT_LISTEN": ""}, nil, "mgmt.listen", func(c *Config) any { return c.MGMT.Listen }, []string{}, FromEnv},
		{"aliases env", map[string]string{"BUZON_ALIASES": "info=bob,Ann sales=bob"}, nil, "aliases", func(c *Config) any { return c.Aliases }, map[string][]string{"info": {"bob", "ann"}, "sales": {"bob"}}, FromEnv},
		{"data dir flag", nil, []string{"--data-dir", "/srv/buzon/"}, "data_dir", func(c *Config) any { return c.DataDir }, "/srv/buzon", FromFlag},
		{"log file flag", nil, []string{"-l", "/tmp/x.log"}, "log.file", func(c *Config) any { return c.Log.File }, "/tmp/x.log", FromFlag},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Chdir(t.TempDir())
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			cfg, meta, _, err := loadT(t, file, tt.flags...)
			if err != nil {
				t.Fatal(err)
			}
			if got := tt.get(cfg); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("%s = %#v, want %#v", tt.key, got, tt.want)
			}
			if meta.Sources[tt.key] != tt.wantSrc {
				t.Errorf("source of %s = %q, want %q", tt.key, meta.Sources[tt.key], tt.wantSrc)
			}
		})
	}
}

func TestListenForms(t *testing.T) {
	tests := []struct {
		name  string
		yaml  string
		flags []string
		want  []string
	}{
		{"string", "smtp: {listen: '127.0.0.1:25'}", nil, []string{"127.0.0.1:25"}},
		{"list", "smtp: {listen: ['127.0.0.1:25', '[::1]:25']}", nil, []string{"127.0.0.1:25", "[::1]:25"}},
		{"all interfaces", "smtp: {listen: ':25'}", nil, []string{":25"}},
		{"host name", "smtp: {listen: 'localhost:25'}", nil, []string{"localhost:25"}},
		{"empty string is off", "smtp: {listen: ''}", nil, []string{}},
		{"empty list is off", "smtp: {listen: []}", nil, []string{}},
		{"null is off", "smtp: {listen: }", nil, []string{}},
		{"bare port flag", "", []string{"-s", "2626"}, []string{"127.0.0.1:2626"}},
		{"bare port flags", "", []string{"-s", "2626", "--smtp-listen", "[::1]:2626"}, []string{"127.0.0.1:2626", "[::1]:2626"}},
		{"host:port flag", "", []string{"--smtp-listen=0.0.0.0:25"}, []string{"0.0.0.0:25"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Chdir(t.TempDir())
			cfg, _, _, err := loadT(t, tt.yaml, tt.flags...)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(cfg.SMTP.Listen, tt.want) {
				t.Errorf("smtp.listen = %#v, want %#v", cfg.SMTP.Listen, tt.want)
			}
		})
	}
	t.Run("bare port mgmt", func(t *testing.T) {
		t.Chdir(t.TempDir())
		cfg, _, _, err := loadT(t, "", "-p", "6001", "--pop3-listen", "1111")
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(cfg.MGMT.Listen, []string{"127.0.0.1:6001"}) || !reflect.DeepEqual(cfg.POP3.Listen, []string{"127.0.0.1:1111"}) {
			t.Errorf("mgmt %v pop3 %v", cfg.MGMT.Listen, cfg.POP3.Listen)
		}
	})
}

func TestValidationErrors(t *testing.T) {
	cert := testcert.New(t)
	tests := []struct {
		name  string
		yaml  string
		env   map[string]string
		flags []string
		want  string // the error must contain it
	}{
		{"not yaml", "smtp: [", nil, nil, "invalid YAML"},
		{"not a mapping", "- a\n- b\n", nil, nil, "must be a YAML mapping"},
		{"unknown top key", "hostnme: x\n", nil, nil, "hostnme: unknown key"},
		{"unknown nested key", "smtp:\n  listn: x\n", nil, nil, "smtp.listn: unknown key"},
		{"unknown deep key", "limits:\n  max_users:\n    x: 1\n", nil, nil, "limits.max_users: must be a positive integer"},
		{"section not a map", "smtp: 5\n", nil, nil, "smtp: must be a mapping"},
		{"upper-case key", "Hostname: x\n", nil, nil, "Hostname: unknown key"},
		{"hostname", "hostname: 'bad host'\n", nil, nil, "hostname: must be a host name"},
		{"no domains", "domains: []\n", nil, nil, "domains: at least one domain is required"},
		{"bad domain", "domains: ['exa mple.org']\n", nil, nil, "domains: \"exa mple.org\" is not a valid domain name"},
		{"domain not a string", "domains: [1]\n", nil, nil, "domains: must be a string or a list of strings"},
		{"aliases not a map", "aliases: [a]\n", nil, nil, "aliases: must be a mapping"},
		{"alias bad target", "aliases: {info: '../etc'}\n", nil, nil, "aliases: info: \"../etc\" is not a valid user name"},
		{"alias reserved target", "aliases: {info: postmaster}\n", nil, nil, "is a reserved name"},
		{"alias bad local", "aliases: {'a b': bob}\n", nil, nil, "is not a valid local part"},
		{"alias empty", "aliases: {info: []}\n", nil, nil, "aliases: info: needs at least one user"},
		{"alias dup", "aliases: {Info: bob, info: ann}\n", nil, nil, "listed twice"},
		{"alias env", "", map[string]string{"BUZON_ALIASES": "info"}, nil, "aliases: entry \"info\" must be local=user"},
		{"data_dir empty", "data_dir: ''\n", nil, nil, "data_dir: must not be empty"},
		{"shutdown_grace", "shutdown_grace: 5\n", nil, nil, "shutdown_grace: must be a duration"},
		{"shutdown_grace negative", "shutdown_grace: -1s\n", nil, nil, "shutdown_grace: must be a duration"},
		{"listen no port", "smtp: {listen: '127.0.0.1'}\n", nil, nil, "smtp.listen: \"127.0.0.1\": must be host:port"},
		{"listen ipv6 no brackets", "pop3: {listen: '::1:110'}\n", nil, nil, "pop3.listen: \"::1:110\": must be host:port"},
		{"listen bad port", "mgmt: {listen: '127.0.0.1:99999'}\n", nil, nil, "mgmt.listen: \"127.0.0.1:99999\": port must be"},
		{"listen bad host", "smtp: {submission_listen: 'a_b:1'}\n", nil, nil, "smtp.submission_listen: \"a_b:1\": host must be"},
		{"listen bare port in file", "smtp: {listen: '25'}\n", nil, nil, "smtp.listen: \"25\": must be host:port"},
		{"listen duplicate", "smtp: {listen: '127.0.0.1:2000', submission_listen: '127.0.0.1:2000'}\n", nil, nil, "smtp.submission_listen: 127.0.0.1:2000 is already used by smtp.listen"},
		{"listen bad env", "", map[string]string{"BUZON_SMTP_LISTEN": "nope"}, nil, "smtp.listen: \"nope\": must be host:port"},
		{"listen bad flag", "", nil, []string{"-p", "x:y"}, "mgmt.listen: \"x:y\": port must be"},
		{"smtp tls_listen without tls", "smtp: {tls_listen: '127.0.0.1:4650'}\n", nil, nil, "smtp.tls_listen: requires tls.cert_file and tls.key_file"},
		{"pop3 tls_listen without tls", "pop3: {tls_listen: '127.0.0.1:9950'}\n", nil, nil, "pop3.tls_listen: requires tls.cert_file and tls.key_file"},
		{"cert without key", "tls: {cert_file: " + cert.CertFile + "}\n", nil, nil, "tls.key_file: required when tls.cert_file is set"},
		{"key without cert", "tls: {key_file: " + cert.KeyFile + "}\n", nil, nil, "tls.cert_file: required when tls.key_file is set"},
		{"cert unreadable", "tls: {cert_file: /nonexistent/c.pem, key_file: /nonexistent/k.pem}\n", nil, nil, "tls.cert_file: cannot load"},
		{"max_message_bytes", "smtp: {max_message_bytes: 0}\n", nil, nil, "smtp.max_message_bytes: must be a positive integer"},
		{"max_recipients", "smtp: {max_recipients: -1}\n", nil, nil, "smtp.max_recipients: must be a positive integer"},
		{"max_recipients float", "smtp: {max_recipients: 1.5}\n", nil, nil, "smtp.max_recipients: must be a positive integer"},
		{"max_recipients string", "smtp: {max_recipients: many}\n", nil, nil, "smtp.max_recipients: must be a positive integer"},
		{"max_line_length", "smtp: {max_line_length: 100}\n", nil, nil, "smtp.max_line_length: must be an integer of at least 1000"},
		{"min_free_bytes", "smtp: {min_free_bytes: -5}\n", nil, nil, "smtp.min_free_bytes: must be a non-negative integer"},
		{"allow_insecure", "auth: {allow_insecure: maybe}\n", nil, nil, "auth.allow_insecure: must be true or false"},
		{"trust_loopback env", "", map[string]string{"BUZON_AUTH_TRUST_LOOPBACK": "yes please"}, nil, "auth.trust_loopback: must be true or false (from BUZON_AUTH_TRUST_LOOPBACK)"},
		{"max_connections", "limits: {max_connections: 0}\n", nil, nil, "limits.max_connections: must be a positive integer"},
		{"max_connections huge", "limits: {max_connections: 2000000}\n", nil, nil, "limits.max_connections: must be at most 1000000"},
		{"max_connections env", "", map[string]string{"BUZON_LIMITS_MAX_CONNECTIONS": "abc"}, nil, "limits.max_connections: must be a positive integer (from BUZON_LIMITS_MAX_CONNECTIONS)"},
		{"max_connections_per_ip", "limits: {max_connections_per_ip: 0}\n", nil, nil, "limits.max_connections_per_ip: must be a positive integer"},
		{"max_users", "limits: {max_users: x}\n", nil, nil, "limits.max_users: must be a positive integer"},
		{"idle_timeout", "limits: {idle_timeout: 10}\n", nil, nil, "limits.idle_timeout: must be a positive duration"},
		{"idle_timeout zero", "limits: {idle_timeout: 0s}\n", nil, nil, "limits.idle_timeout: must be a positive duration"},
		{"login_timeout", "limits: {login_timeout: soon}\n", nil, nil, "limits.login_timeout: must be a positive duration"},
		{"transform command type", "transform: {command: 5}\n", nil, nil, "transform.command: must be a list of strings"},
		{"transform command list type", "transform: {command: [a, [b]]}\n", nil, nil, "transform.command: must be a list of strings"},
		{"transform command quote", "transform: {command: \"tr 'a\"}\n", nil, nil, "transform.command: cannot split"},
		{"transform command flag quote", "", nil, []string{"-t", `tr "a`}, "transform.command: cannot split"},
		{"transform empty program", "transform: {command: ['', x]}\n", nil, nil, "transform.command: the program name must not be empty"},
		{"transform enabled without command", "transform: {enabled: true}\n", nil, nil, "transform.enabled: requires transform.command"},
		{"transform enabled bad", "transform: {enabled: 2}\n", nil, nil, "transform.enabled: must be true or false"},
		{"transform timeout", "transform: {timeout: -1s}\n", nil, nil, "transform.timeout: must be a positive duration"},
		{"transform max_concurrent", "transform: {max_concurrent: 0}\n", nil, nil, "transform.max_concurrent: must be a positive integer"},
		{"log level", "log: {level: loud}\n", nil, nil, "log.level: must be one of debug, info, warn, error"},
		{"log level flag", "", nil, []string{"-L", "trace"}, "log.level: must be one of debug, info, warn, error (from flag --log-level)"},
		{"log format", "log: {format: xml}\n", nil, nil, "log.format: must be one of text, json"},
		{"log file", "log: {file: [a, b]}\n", nil, nil, "log.file: must be a string"},
		{"log file NUL", "log: {file: \"a\\0b\"}\n", nil, nil, "log.file: must not contain NUL"},
		{"log file directory", "log: {file: " + os.TempDir() + "}\n", nil, nil, "log.file: " + os.TempDir() + " is a directory"},
		{"data_dir NUL", "data_dir: \"a\\0b\"\n", nil, nil, "data_dir: must not contain NUL"},
		{"hostname invalid UTF-8", "", map[string]string{"BUZON_HOSTNAME": "\xff.test"}, nil, "hostname: must be a host name (letters, digits, hyphens and dots) (from BUZON_HOSTNAME)"},
		{"admin password space", "admin: {password: 'a b'}\n", nil, nil, "admin.password: must not contain spaces"},
		{"admin password long", "admin: {password: '" + strings.Repeat("x", 73) + "'}\n", nil, nil, "admin.password: must be 1 to 72 bytes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Chdir(t.TempDir())
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			_, _, _, err := loadT(t, tt.yaml, tt.flags...)
			if err == nil {
				t.Fatalf("no error, want %q", tt.want)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %q does not contain %q", err, tt.want)
			}
		})
	}
}

func TestValidValuesNormalised(t *testing.T) {
	t.Chdir(t.TempDir())
	cert := testcert.New(t)
	yaml := `
hostname: MX.Example.ORG.
domains: [Example.ORG, example.org, other.test]
aliases:
  Info: [Bob, bob, ann]
  first.last: carol
tls: {cert_file: ` + cert.CertFile + `, key_file: ` + cert.KeyFile + `}
smtp: {tls_listen: '127.0.0.1:0', submission_listen: '127.0.0.1:0'}
transform: {command: "/usr/bin/env X='1 2' cat", enabled: true}
limits: {idle_timeout: 1m}
log: {level: WARN, format: json}
`
	cfg, _, warns, err := loadT(t, yaml)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Hostname != "mx.example.org" {
		t.Errorf("hostname %q", cfg.Hostname)
	}
	if !reflect.DeepEqual(cfg.Domains, []string{"example.org", "other.test"}) {
		t.Errorf("domains %v", cfg.Domains)
	}
	if !reflect.DeepEqual(cfg.Aliases, map[string][]string{"info": {"bob", "ann"}, "first.last": {"carol"}}) {
		t.Errorf("aliases %v", cfg.Aliases)
	}
	if !reflect.DeepEqual(cfg.Transform.Command, []string{"/usr/bin/env", "X=1 2", "cat"}) {
		t.Errorf("command %q", cfg.Transform.Command)
	}
	if !cfg.TLS.Enabled() || cfg.Log.Level != "warn" || cfg.Log.Format != "json" {
		t.Errorf("tls/log %+v %+v", cfg.TLS, cfg.Log)
	}
	if len(warns) != 2 || !strings.Contains(warns[0], "limits.idle_timeout") {
		t.Errorf("warnings %q", warns)
	}
}

func TestWarnings(t *testing.T) {
	for _, tt := range []struct {
		idle string
		n    int
	}{{"4m", 2}, {"5m", 1}, {"9m59s", 1}, {"10m", 0}, {"1h", 0}} {
		t.Chdir(t.TempDir())
		_, _, warns, err := loadT(t, "limits: {idle_timeout: "+tt.idle+"}\n")
		if err != nil {
			t.Fatal(err)
		}
		if len(warns) != tt.n {
			t.Errorf("idle_timeout %s: %d warnings %q, want %d", tt.idle, len(warns), warns, tt.n)
		}
	}
}

func TestRuntimeValues(t *testing.T) {
	t.Chdir(t.TempDir())
	dir := t.TempDir()
	state := `{"max_users": 5, "transform": true}`
	if err := os.WriteFile(filepath.Join(dir, "state.json"), []byte(state), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, meta, _, err := loadT(t, "data_dir: "+dir+"\nlimits: {max_users: 50, max_connections: 60}\ntransform: {command: [cat]}\n")
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Limits.MaxUsers != 5 || meta.Sources["limits.max_users"] != FromRuntime {
		t.Errorf("max_users %d from %s", cfg.Limits.MaxUsers, meta.Sources["limits.max_users"])
	}
	if !cfg.Transform.Enabled || meta.Sources["transform.enabled"] != FromRuntime {
		t.Errorf("transform %v from %s", cfg.Transform.Enabled, meta.Sources["transform.enabled"])
	}
	if cfg.Limits.MaxConnections != 60 || meta.Sources["limits.max_connections"] != FromFile {
		t.Errorf("max_connections %d from %s", cfg.Limits.MaxConnections, meta.Sources["limits.max_connections"])
	}
	if meta.Base.MaxUsers != 50 || meta.Base.Transform {
		t.Errorf("base %+v must be the configured values", meta.Base)
	}
	if err := os.WriteFile(filepath.Join(dir, "state.json"), []byte("{"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, _, _, err := loadT(t, "data_dir: "+dir+"\n"); err == nil {
		t.Error("a corrupt state.json must be an error")
	}
}

func TestEntriesMask(t *testing.T) {
	t.Chdir(t.TempDir())
	t.Setenv("BUZON_ADMIN_PASSWORD", "hunter2")
	cfg, meta, _, err := loadT(t, "")
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	if err := Print(&b, cfg, meta); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	if strings.Contains(out, "hunter2") {
		t.Fatal("password printed")
	}
	entries := Entries(cfg, meta)
	if len(entries) != len(Keys()) {
		t.Fatalf("%d entries for %d keys", len(entries), len(Keys()))
	}
	for _, e := range entries {
		if e.Key == "admin.password" && (e.Value != Masked || e.Source != FromEnv) {
			t.Errorf("admin.password entry %+v", e)
		}
	}
}

func TestSplitCommand(t *testing.T) {
	tests := []struct {
		in      string
		want    []string
		wantErr bool
	}{
		{"", nil, false},
		{"  a  b\tc ", []string{"a", "b", "c"}, false},
		{`a 'b c' "d e"`, []string{"a", "b c", "d e"}, false},
		{`'' ""`, []string{"", ""}, false},
		{`a\ b`, []string{"a b"}, false},
		{`"a\"b" 'a\b'`, []string{`a"b`, `a\b`}, false},
		{`"\$x \n"`, []string{`$x \n`}, false},
		{`pre'mid'"post"`, []string{"premidpost"}, false},
		{"a\\\nb", []string{"ab"}, false},
		{`$HOME; rm -rf /`, []string{"$HOME;", "rm", "-rf", "/"}, false},
		{`'open`, nil, true},
		{`"open`, nil, true},
		{`end\`, nil, true},
	}
	for _, tt := range tests {
		got, err := SplitCommand(tt.in)
		if (err != nil) != tt.wantErr {
			t.Errorf("SplitCommand(%q) error %v", tt.in, err)
			continue
		}
		if !tt.wantErr && !reflect.DeepEqual(got, tt.want) {
			t.Errorf("SplitCommand(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestEnvName(t *testing.T) {
	for k, want := range map[string]string{
		"smtp.listen":            "BUZON_SMTP_LISTEN",
		"limits.max_connections": "BUZON_LIMITS_MAX_CONNECTIONS",
		"admin.password":         "BUZON_ADMIN_PASSWORD",
		"data_dir":               "BUZON_DATA_DIR",
	} {
		if got := EnvName(k); got != want {
			t.Errorf("EnvName(%s) = %s, want %s", k, got, want)
		}
	}
}

func TestEnvWarnings(t *testing.T) {
	got := envWarnings([]string{"BUZON_SMTP_LISTN=x", "BUZON_SMTP_LISTEN=x", "BUZON_MGMT_ADDR=x", "BUZON_BIN=x", "HOME=/", "BUZON_LIMITS_MAXUSERS=1"})
	if len(got) != 2 || !strings.Contains(got[0], "BUZON_LIMITS_MAXUSERS") || !strings.Contains(got[1], "BUZON_SMTP_LISTN") {
		t.Fatalf("warnings %q", got)
	}
}

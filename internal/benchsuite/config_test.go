package benchsuite

import (
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/buzon-mail/buzon/config"
)

func TestConfigYAMLLoads(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name string
		in   serverConfig
	}{
		{"default limits", serverConfig{
			DataDir: filepath.Join(dir, "data"), LogFile: filepath.Join(dir, "buzon.log"),
			SMTP: "127.0.0.1:30025", POP3: "127.0.0.1:30110", MGMT: "127.0.0.1:36000", MaxConns: 12000,
		}},
		{"larger conns", serverConfig{
			DataDir: filepath.Join(dir, "d2"), LogFile: filepath.Join(dir, "b2.log"),
			SMTP: "127.0.0.1:31025", POP3: "127.0.0.1:31110", MGMT: "127.0.0.1:37000", MaxConns: 60000,
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "buzon.yaml")
			if err := writeConfig(path, tt.in); err != nil {
				t.Fatal(err)
			}
			cfg, _, warnings, err := config.Load(config.Options{File: path, NoRuntime: true})
			if err != nil {
				t.Fatalf("config.Load: %v", err)
			}
			if len(warnings) > 0 {
				t.Errorf("warnings: %v", warnings)
			}
			checks := []struct {
				what      string
				got, want any
			}{
				{"data_dir", cfg.DataDir, tt.in.DataDir},
				{"log.file", cfg.Log.File, tt.in.LogFile},
				{"log.level", cfg.Log.Level, "warn"},
				{"hostname", cfg.Hostname, Hostname},
				{"smtp.listen", cfg.SMTP.Listen, []string{tt.in.SMTP}},
				{"pop3.listen", cfg.POP3.Listen, []string{tt.in.POP3}},
				{"mgmt.listen", cfg.MGMT.Listen, []string{tt.in.MGMT}},
				{"limits.max_connections", cfg.Limits.MaxConnections, tt.in.MaxConns},
				{"limits.max_connections_per_ip", cfg.Limits.MaxConnectionsPerIP, tt.in.MaxConns},
				{"limits.login_timeout", cfg.Limits.LoginTimeout, 10 * time.Minute},
				{"limits.idle_timeout", cfg.Limits.IdleTimeout, 10 * time.Minute},
			}
			for _, c := range checks {
				if g, ok := c.got.([]string); ok {
					if !slices.Equal(g, c.want.([]string)) {
						t.Errorf("%s = %v, want %v", c.what, c.got, c.want)
					}
					continue
				}
				if c.got != c.want {
					t.Errorf("%s = %v, want %v", c.what, c.got, c.want)
				}
			}
			if !slices.Contains(cfg.Domains, Domain) {
				t.Errorf("domains %v lack %s", cfg.Domains, Domain)
			}
			if len(cfg.SMTP.SubmissionListen)+len(cfg.SMTP.TLSListen)+len(cfg.POP3.TLSListen) != 0 {
				t.Errorf("extra listeners configured: %+v %+v", cfg.SMTP, cfg.POP3)
			}
		})
	}
}

func TestFreeAddrsDistinct(t *testing.T) {
	addrs, err := freeAddrs(5)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, a := range addrs {
		if seen[a] {
			t.Fatalf("address %s given twice: %v", a, addrs)
		}
		seen[a] = true
	}
}

func TestParamsValidate(t *testing.T) {
	for _, p := range []Params{DefaultParams(), QuickParams()} {
		if err := p.Validate(); err != nil {
			t.Errorf("%+v: %v", p, err)
		}
	}
	bad := []func(*Params){
		func(p *Params) { p.SMTPConns = nil },
		func(p *Params) { p.SMTPConns = []int{1, 0} },
		func(p *Params) { p.Conns = 0 },
		func(p *Params) { p.ListMsgSize = 100 },
		func(p *Params) { p.PairRounds = 0 },
		func(p *Params) { p.PairRounds = p.DiskOps + 1 },
		func(p *Params) { p.PairRounds = p.SMTPMessages + 1 },
		func(p *Params) { p.SMTPTargetConns = 0 },
	}
	for i, f := range bad {
		p := QuickParams()
		f(&p)
		if p.Validate() == nil {
			t.Errorf("case %d: accepted %+v", i, p)
		}
	}
}

func TestSizeLabel(t *testing.T) {
	tests := []struct {
		n    int
		want string
	}{
		{4096, "4KiB"}, {2048, "2KiB"}, {25_000_000, "25MB"}, {1_000_000, "1MB"},
		{1 << 20, "1MiB"}, {1500, "1500B"}, {3000, "3kB"}, {17, "17B"},
	}
	for _, tt := range tests {
		if got := sizeLabel(tt.n); got != tt.want {
			t.Errorf("sizeLabel(%d) = %q, want %q", tt.n, got, tt.want)
		}
	}
}

func TestLastLines(t *testing.T) {
	tests := []struct {
		in   string
		n    int
		want string
	}{
		{"", 3, ""},
		{"a\nb\nc\n", 2, "b\nc\n"},
		{"a\nb", 5, "a\nb\n"},
		{"a\n\n", 1, "a\n"},
	}
	for _, tt := range tests {
		if got := lastLines(tt.in, tt.n); got != tt.want {
			t.Errorf("lastLines(%q, %d) = %q, want %q", tt.in, tt.n, got, tt.want)
		}
	}
}

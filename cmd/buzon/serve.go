package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/buzon-mail/buzon/config"
	"github.com/buzon-mail/buzon/internal/accounting"
	"github.com/buzon-mail/buzon/internal/pause"
	"github.com/buzon-mail/buzon/internal/state"
	"github.com/buzon-mail/buzon/internal/throttle"
	"github.com/buzon-mail/buzon/maildir"
	"github.com/buzon-mail/buzon/users"
	"github.com/spf13/cobra"
)

// errVRFYRemoved answers seed 1's -f flag.
var errVRFYRemoved = errors.New("-f (the VRFY directory) was removed: VRFY now always answers 252 and discloses no accounts")

func newServeCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run the SMTP, POP3 and MGMT servers",
		Long: `Run the SMTP, POP3 and MGMT servers.

SIGINT/SIGTERM stop it (sessions get shutdown_grace to finish), SIGHUP reloads
the configuration's reloadable keys, SIGUSR1 reopens the log file.`,
		// Arguments are checked in RunE so that "-f FILE" gets its own message.
		Args: cobra.ArbitraryArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if cmd.Flags().Changed("vrfy-directory") {
				return errVRFYRemoved
			}
			if v, _ := cmd.Flags().GetBool("version"); v {
				fmt.Fprintf(cmd.OutOrStdout(), "buzon %s\n", version)
				return nil
			}
			if len(args) > 0 {
				return fmt.Errorf("serve takes no arguments, got %q", args[0])
			}
			opts := config.Options{File: g.configFile, Flags: cmd.Flags()}
			pprofAddr, _ := cmd.Flags().GetString("pprof")
			return serve(cmd.Context(), opts, pprofAddr, cmd.ErrOrStderr())
		},
	}
	addServeFlags(cmd)
	// "-f/path" fails in the flag parser (with NoOptDefVal, "/" reads as
	// the next shorthand); say why -f is refused rather than that error.
	cmd.SetFlagErrorFunc(func(c *cobra.Command, err error) error {
		// pflag names the rest of the shorthand group it failed in:
		// "-f/path" fails with "... in -/path".
		for _, a := range g.args {
			if len(a) > 2 && strings.HasPrefix(a, "-f") && strings.HasSuffix(err.Error(), " in -"+a[2:]) {
				return errVRFYRemoved
			}
		}
		return err
	})
	f := cmd.Flags()
	f.BoolP("version", "v", false, "print the version and exit")
	// A flag of serve only, not a configuration key: profiling is switched
	// on for one run while measuring, never left in a file by accident.
	f.String("pprof", "", "serve net/http/pprof on this address (host:port, e.g. 127.0.0.1:6061); off by default")
	f.StringP("vrfy-directory", "f", "", "removed (VRFY answers 252)")
	f.Lookup("vrfy-directory").NoOptDefVal = " "
	_ = f.MarkHidden("vrfy-directory")
	return cmd
}

// server is one run of `buzon serve`.
type server struct {
	opts     config.Options
	logs     *logSetup
	log      *slog.Logger
	cur      atomic.Pointer[config.Config]
	base     state.Values // the configured run-time values (state.Runtime's base)
	certs    *certReloader
	d        *deps
	services []service
}

// serve runs the servers until ctx ends or SIGINT/SIGTERM; pprofAddr, if
// not empty, is where the runtime profiles are served.
func serve(ctx context.Context, opts config.Options, pprofAddr string, stderr io.Writer) error {
	if ctx == nil {
		ctx = context.Background()
	}
	// Subscribe before anything starts, so an early signal is not fatal.
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP, syscall.SIGUSR1)
	defer signal.Stop(sigs)

	cfg, meta, warns, err := config.Load(opts)
	if err != nil {
		return err
	}
	s := &server{opts: opts, logs: newLogSetup(stderr)}
	if err := s.logs.apply(cfg.Log); err != nil {
		return err
	}
	defer s.logs.sink.close()
	s.log = s.logs.logger()
	s.cur.Store(cfg)
	s.base = meta.Base
	for _, w := range warns {
		s.log.Warn("configuration", "warning", w)
	}
	if meta.File != "" {
		s.log.Info("configuration loaded", "file", meta.File)
	} else {
		s.log.Info("no configuration file found, running on defaults")
	}

	acctCtx, stopAcct := context.WithCancel(context.Background())
	acctDone := make(chan error, 1)
	if err := s.setup(cfg, meta); err != nil {
		stopAcct()
		return err
	}
	go func() { acctDone <- s.d.acct.Run(acctCtx) }()
	stopCounters := func() {
		stopAcct()
		if err := <-acctDone; err != nil {
			s.log.Error("saving counters", "err", err)
		}
	}

	for _, start := range []func(*deps) ([]service, error){startSMTP, startPOP3, startMGMT} {
		svcs, err := start(s.d)
		s.services = append(s.services, svcs...)
		if err != nil {
			s.log.Error("start failed", "err", err)
			s.shutdown()
			stopCounters()
			return err
		}
	}
	if pprofAddr != "" {
		svc, err := startPprof(pprofAddr, s.log)
		if err != nil {
			s.log.Error("start failed", "err", err)
			s.shutdown()
			stopCounters()
			return err
		}
		s.services = append(s.services, svc)
	}
	s.log.Info("buzon started", "version", version, "hostname", cfg.Hostname, "data_dir", cfg.DataDir)

	for {
		select {
		case <-ctx.Done():
			s.shutdown()
			stopCounters()
			return nil
		case sig := <-sigs:
			switch sig {
			case syscall.SIGHUP:
				s.reload()
			case syscall.SIGUSR1:
				if err := s.logs.sink.reopen(); err != nil {
					s.log.Error("reopening the log file", "err", err)
				} else {
					s.log.Info("log file reopened")
				}
			default:
				s.log.Info("stopping", "signal", sig.String(), "grace", s.cur.Load().ShutdownGrace.String())
				s.shutdown()
				stopCounters()
				s.log.Info("stopped")
				return nil
			}
		}
	}
}

// setup builds the shared dependencies every listener uses.
func (s *server) setup(cfg *config.Config, meta *config.Meta) error {
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return fmt.Errorf("create data_dir: %w", err)
	}
	rt, err := state.New(cfg.StatePath(), meta.Base)
	if err != nil {
		return fmt.Errorf("run-time values: %w", err)
	}
	store, err := users.Open(cfg.DataDir, users.Options{MaxUsers: rt.MaxUsers, Logger: s.log})
	if err != nil {
		return fmt.Errorf("open user store: %w", err)
	}
	created, pwFile, err := store.EnsureAdmin(cfg.Admin.Password)
	if err != nil {
		return fmt.Errorf("create admin account: %w", err)
	}
	mail, err := maildir.New(filepath.Join(cfg.DataDir, "mail"), maildir.Options{Hostname: cfg.Hostname, Logger: s.log})
	if err != nil {
		return fmt.Errorf("open maildir store: %w", err)
	}
	if created {
		if err := mail.Create("admin"); err != nil {
			return fmt.Errorf("create the admin maildir: %w", err)
		}
		if pwFile != "" {
			s.log.Warn("admin account created; its password is in the file", "file", pwFile)
		} else {
			s.log.Info("admin account created with the configured admin.password")
		}
	} else if pwFile != "" {
		s.log.Info("the initial admin password is still in the file", "file", pwFile)
	}
	if err := mail.CleanTmp(36 * time.Hour); err != nil {
		s.log.Warn("cleaning maildir tmp/", "err", err)
	}
	gate := pause.New()
	acct, err := accounting.New(accounting.Options{
		StatePath:      filepath.Join(cfg.DataDir, "counters.json"),
		MaxConnections: rt.MaxConnections,
		MaxPerIP:       func() int { return s.cur.Load().Limits.MaxConnectionsPerIP },
		Pause:          gate,
		Logger:         s.log,
	})
	if err != nil {
		return fmt.Errorf("connection accounting: %w", err)
	}
	var tlsConf *tls.Config
	if cfg.TLS.Enabled() {
		s.certs = &certReloader{}
		if err := s.certs.load(cfg.TLS); err != nil {
			return err
		}
		tlsConf = s.certs.tlsConfig()
	}
	s.d = &deps{
		cfg:      cfg,
		logger:   s.log,
		users:    store,
		mail:     mail,
		acct:     acct,
		pause:    gate,
		runtime:  rt,
		throttle: throttle.New(throttle.Options{}),
		tls:      tlsConf,
	}
	return nil
}

// shutdown stops every service at once, giving sessions shutdown_grace.
func (s *server) shutdown() {
	ctx, cancel := context.WithTimeout(context.Background(), s.cur.Load().ShutdownGrace)
	defer cancel()
	var wg sync.WaitGroup
	for _, svc := range s.services {
		if svc.shutdown == nil {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := svc.shutdown(ctx); err != nil && !errors.Is(err, context.DeadlineExceeded) {
				s.log.Warn("shutdown", "service", svc.name, "err", err)
			}
		}()
	}
	wg.Wait()
}

// reload re-reads the configuration (SIGHUP) and applies its reloadable
// keys; an invalid configuration is logged and the old one kept.
func (s *server) reload() {
	old := s.cur.Load()
	loaded, meta, warns, err := config.Load(s.opts)
	if err != nil {
		s.log.Error("reload: invalid configuration, keeping the old one", "err", err)
		return
	}
	for _, w := range warns {
		s.log.Warn("configuration", "warning", w)
	}
	cfg := reloaded(old, loaded)
	for _, k := range restartKeys(cfg, loaded, meta) {
		s.log.Warn("reload: this change needs a restart, keeping the old value", "key", k)
	}

	if err := s.logs.apply(cfg.Log); err != nil {
		s.log.Error("reload: log settings", "err", err)
		cfg.Log = old.Log
	}
	if s.certs != nil && cfg.TLS.Enabled() {
		if err := s.certs.load(cfg.TLS); err != nil {
			s.log.Error("reload: TLS certificate, keeping the old one", "err", err)
		}
	}
	// transform.enabled is read at start only; MGMT TRANSFORM switches it.
	base := meta.Base
	base.Transform = s.base.Transform
	s.base = base
	// state.json is read again, so `config reset-runtime` followed by a
	// SIGHUP clears the run-time values of a running server.
	if err := s.d.runtime.Reload(base); err != nil {
		s.log.Error("reload: run-time values, keeping the ones held", "err", err)
	}
	s.cur.Store(cfg)
	for _, svc := range s.services {
		if svc.reload != nil {
			svc.reload(cfg)
		}
	}
	s.log.Info("configuration reloaded", "file", meta.File)
}

// reloaded is the running configuration old with the keys SIGHUP applies
// (SPEC §2) taken from the newly loaded one: domains, aliases, the TLS
// certificate files, log.*, limits.* (run-time values are applied on top by
// state.Runtime), transform.command and transform.timeout. Every other key
// keeps its running value until a restart.
func reloaded(old, loaded *config.Config) *config.Config {
	cfg := *old
	cfg.Domains = loaded.Domains
	cfg.Aliases = loaded.Aliases
	if old.TLS.Enabled() == loaded.TLS.Enabled() {
		// Listeners and STARTTLS offers were built at start: switching TLS
		// on or off needs a restart, a new certificate does not.
		cfg.TLS = loaded.TLS
	}
	cfg.Log = loaded.Log
	cfg.Limits = loaded.Limits
	cfg.Transform.Command = loaded.Transform.Command
	cfg.Transform.Timeout = loaded.Transform.Timeout
	return &cfg
}

// restartKeys lists the keys whose loaded value differs from the one in
// force after a reload: those only a restart applies. Left out are
// admin.password (read at the first start only: a restart would not apply
// it either) and values from state.json (the running server holds those).
func restartKeys(running, loaded *config.Config, meta *config.Meta) []string {
	now, want := config.Entries(running, nil), config.Entries(loaded, nil)
	var keys []string
	for i := range now {
		k := now[i].Key
		if k == "admin.password" || meta.Sources[k] == config.FromRuntime {
			continue
		}
		if now[i].Value != want[i].Value {
			keys = append(keys, now[i].Key)
		}
	}
	return keys
}

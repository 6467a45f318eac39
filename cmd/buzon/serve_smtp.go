package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"

	"github.com/buzon-mail/buzon/config"
	"github.com/buzon-mail/buzon/internal/accounting"
	"github.com/buzon-mail/buzon/smtp"
)

// smtpReloadable extracts the SMTP keys SIGHUP may change.
func smtpReloadable(c *config.Config) smtp.Reloadable {
	return smtp.Reloadable{
		Domains:          c.Domains,
		Aliases:          c.Aliases,
		IdleTimeout:      c.Limits.IdleTimeout,
		TransformCommand: c.Transform.Command,
		TransformTimeout: c.Transform.Timeout,
	}
}

// startSMTP starts the SMTP listeners configured in d.cfg: port 25 mode on
// smtp.listen, submission on smtp.submission_listen and implicit TLS on
// smtp.tls_listen, all through the accounting listener.
func startSMTP(d *deps) ([]service, error) {
	cfg := d.cfg
	spool := filepath.Join(cfg.DataDir, "spool")
	if err := os.MkdirAll(spool, 0o700); err != nil {
		return nil, fmt.Errorf("smtp spool directory: %w", err)
	}
	srv, err := smtp.New(smtp.Options{
		Hostname:               cfg.Hostname,
		MaxMessageBytes:        cfg.SMTP.MaxMessageBytes,
		MaxRecipients:          cfg.SMTP.MaxRecipients,
		MaxLineLength:          cfg.SMTP.MaxLineLength,
		MinFreeBytes:           cfg.SMTP.MinFreeBytes,
		AllowInsecure:          cfg.Auth.AllowInsecure,
		TrustLoopback:          cfg.Auth.TrustLoopback,
		TLS:                    d.tls,
		SpoolDir:               spool,
		TransformEnabled:       d.runtime.TransformEnabled,
		TransformMaxConcurrent: cfg.Transform.MaxConcurrent,
		Reloadable:             smtpReloadable(cfg),
		Users:                  d.users,
		Store:                  smtp.MaildirStore(d.mail),
		Throttle:               d.throttle,
		Counters:               d.acct,
		Logger:                 d.logger,
	})
	if err != nil {
		return nil, err
	}
	opts := accounting.ListenerOptions{Proto: accounting.SMTP, Refuse: srv.Refuse}
	type plan struct {
		addrs []string
		tls   bool
		serve func(net.Listener) error
	}
	plans := []plan{
		{cfg.SMTP.Listen, false, srv.Serve},
		{cfg.SMTP.SubmissionListen, false, srv.ServeSubmission},
		{cfg.SMTP.TLSListen, true, srv.ServeTLS},
	}
	var started int
	for _, p := range plans {
		for _, addr := range p.addrs {
			l, err := d.listen(addr, opts, p.tls)
			if err != nil {
				_ = srv.Shutdown(context.Background())
				return nil, fmt.Errorf("smtp listen %s: %w", addr, err)
			}
			started++
			go func() {
				if err := p.serve(l); err != nil && !errors.Is(err, net.ErrClosed) {
					d.logger.Error("smtp server stopped", "listen", addr, "err", err)
				}
			}()
		}
	}
	if started == 0 {
		_ = srv.Shutdown(context.Background())
		return nil, nil
	}
	return []service{{
		name:     "smtp",
		shutdown: srv.Shutdown,
		reload:   func(c *config.Config) { srv.Reload(smtpReloadable(c)) },
	}}, nil
}

package main

import (
	"context"
	"errors"
	"fmt"
	"net"

	"github.com/buzon-mail/buzon/config"
	"github.com/buzon-mail/buzon/internal/accounting"
	"github.com/buzon-mail/buzon/pop3"
)

// startPOP3 starts the POP3 listeners configured in d.cfg: plain POP3 (with
// STLS when TLS is configured) on pop3.listen and POP3S on pop3.tls_listen,
// all through the accounting listener.
func startPOP3(d *deps) ([]service, error) {
	cfg := d.cfg
	srv := &pop3.Server{
		Hostname: cfg.Hostname,
		Authenticate: func(ctx context.Context, name, password string) (string, error) {
			u, err := d.users.Authenticate(ctx, name, password)
			return u.Name, err
		},
		Mail:          pop3.MaildirStore(d.mail),
		Throttle:      d.throttle,
		Counters:      d.acct,
		TLSConfig:     d.tls,
		AllowInsecure: cfg.Auth.AllowInsecure,
		TrustLoopback: cfg.Auth.TrustLoopback,
		LoginTimeout:  cfg.Limits.LoginTimeout,
		IdleTimeout:   cfg.Limits.IdleTimeout,
		Logger:        d.logger,
	}
	opts := accounting.ListenerOptions{Proto: accounting.POP3, Refuse: pop3.Refuse}
	var started int
	for _, p := range []struct {
		addrs []string
		tls   bool
	}{{cfg.POP3.Listen, false}, {cfg.POP3.TLSListen, true}} {
		for _, addr := range p.addrs {
			l, err := d.listen(addr, opts, p.tls)
			if err != nil {
				_ = srv.Shutdown(context.Background())
				return nil, fmt.Errorf("pop3 listen %s: %w", addr, err)
			}
			started++
			go func() {
				if err := srv.Serve(l); err != nil && !errors.Is(err, pop3.ErrServerClosed) && !errors.Is(err, net.ErrClosed) {
					d.logger.Error("pop3 server stopped", "listen", addr, "err", err)
				}
			}()
		}
	}
	if started == 0 {
		return nil, nil
	}
	return []service{{
		name:     "pop3",
		shutdown: srv.Shutdown,
		// limits.* reload; the certificate reloads through GetCertificate.
		reload: func(c *config.Config) { srv.SetTimeouts(c.Limits.LoginTimeout, c.Limits.IdleTimeout) },
	}}, nil
}

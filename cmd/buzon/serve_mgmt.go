package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"path/filepath"

	"github.com/buzon-mail/buzon/config"
	"github.com/buzon-mail/buzon/internal/accounting"
	"github.com/buzon-mail/buzon/mgmt"
)

// startMGMT starts the MGMT listeners configured in d.cfg.
func startMGMT(d *deps) ([]service, error) {
	cfg := d.cfg
	srv := mgmt.New(mgmt.Config{
		Users:               d.users,
		Mail:                mgmt.MaildirStore(d.mail),
		Stats:               d.acct,
		Pause:               d.pause,
		Runtime:             d.runtime,
		Throttle:            d.throttle,
		TLS:                 d.tls,
		DeletedDir:          filepath.Join(cfg.DataDir, "deleted"),
		TransformConfigured: len(cfg.Transform.Command) > 0,
		LoginTimeout:        cfg.Limits.LoginTimeout,
		IdleTimeout:         cfg.Limits.IdleTimeout,
		AllowInsecure:       cfg.Auth.AllowInsecure,
		TrustLoopback:       cfg.Auth.TrustLoopback,
		Logger:              d.logger,
	})
	opts := accounting.ListenerOptions{
		Proto:   accounting.MGMT,
		MaxLive: mgmt.MaxSessions,
		Refuse: func(w io.Writer, _ accounting.Reason) {
			_, _ = io.WriteString(w, mgmt.TooManySessions+"\r\n")
		},
	}
	for _, addr := range cfg.MGMT.Listen {
		l, err := d.listen(addr, opts, false)
		if err != nil {
			_ = srv.Shutdown(context.Background())
			return nil, fmt.Errorf("mgmt listen %s: %w", addr, err)
		}
		go func() {
			if err := srv.Serve(l); err != nil && !errors.Is(err, mgmt.ErrServerClosed) {
				d.logger.Error("mgmt server stopped", "listen", addr, "err", err)
			}
		}()
	}
	if len(cfg.MGMT.Listen) == 0 {
		return nil, nil
	}
	return []service{{
		name:     "mgmt",
		shutdown: srv.Shutdown,
		reload: func(c *config.Config) {
			srv.SetTransformConfigured(len(c.Transform.Command) > 0)
			srv.SetTimeouts(c.Limits.LoginTimeout, c.Limits.IdleTimeout)
		},
	}}, nil
}

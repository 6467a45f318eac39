package main

import (
	"context"
	"crypto/tls"
	"errors"
	"log/slog"
	"net"

	"github.com/buzon-mail/buzon/config"
	"github.com/buzon-mail/buzon/internal/accounting"
	"github.com/buzon-mail/buzon/internal/pause"
	"github.com/buzon-mail/buzon/internal/state"
	"github.com/buzon-mail/buzon/internal/throttle"
	"github.com/buzon-mail/buzon/maildir"
	"github.com/buzon-mail/buzon/users"
)

// deps is what `buzon serve` builds once and every listener shares.
type deps struct {
	cfg      *config.Config // the configuration at start; reloads arrive through service.Reload
	logger   *slog.Logger
	users    *users.Store
	mail     *maildir.Store
	acct     *accounting.Accountant
	pause    *pause.Gate
	runtime  *state.Runtime
	throttle *throttle.Throttle
	// tls is nil when tls.* is not configured; its certificate is reloaded on
	// SIGHUP through GetCertificate.
	tls *tls.Config
}

// service is one started protocol server.
type service struct {
	name     string
	shutdown func(context.Context) error
	// reload applies the reloadable keys of a new config (may be nil).
	reload func(*config.Config)
}

// listen opens addr, wraps it with the accountant and, for implicit TLS
// (implicitTLS true), with TLS on top, and logs one line for the listener.
func (d *deps) listen(addr string, opts accounting.ListenerOptions, implicitTLS bool) (net.Listener, error) {
	if implicitTLS && d.tls == nil {
		return nil, errors.New("implicit TLS needs tls.cert_file and tls.key_file")
	}
	raw, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err // "listen tcp <addr>: ..."; the caller names the protocol
	}
	if implicitTLS {
		// The accountant refuses over TLS, after the handshake (SPEC §4, §5).
		opts.TLS = d.tls
	}
	l := d.acct.Listener(raw, opts)
	if implicitTLS {
		// TLS wraps the accounting listener, so byte counts are raw socket
		// bytes and the protocol server still sees a *tls.Conn.
		l = tls.NewListener(l, d.tls)
	}
	d.logger.Info("listening", "protocol", opts.Proto.String(), "addr", raw.Addr().String(), "tls", implicitTLS)
	return l, nil
}

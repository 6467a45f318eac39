package main

import (
	"crypto/tls"
	"fmt"
	"sync/atomic"

	"github.com/buzon-mail/buzon/config"
)

// certReloader serves the configured certificate and loads it again on
// SIGHUP, so a renewed certificate applies without a restart.
type certReloader struct {
	cert atomic.Pointer[tls.Certificate]
}

func (r *certReloader) load(c config.TLS) error {
	cert, err := tls.LoadX509KeyPair(c.CertFile, c.KeyFile)
	if err != nil {
		return fmt.Errorf("load TLS certificate: %w", err)
	}
	r.cert.Store(&cert)
	return nil
}

// tlsConfig: TLS 1.2 minimum (SPEC §3), certificate from the reloader.
func (r *certReloader) tlsConfig() *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS12,
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
			return r.cert.Load(), nil
		},
	}
}

// Package interop holds end-to-end tests that run buzon against real
// third-party mail software from Debian: swaks and msmtp send, fetchmail and
// mpop fetch, Dovecot reads buzon's Maildirs. They are built only with the
// `interop` tag (`make test-interop`, after `make interop-deps`); a test
// whose tool is not installed is skipped.
package interop

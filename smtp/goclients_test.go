package smtp

import (
	"crypto/tls"
	"errors"
	"io"
	"net"
	netsmtp "net/smtp"
	"net/textproto"
	"strings"
	"testing"

	"github.com/emersion/go-sasl"
	gosmtp "github.com/emersion/go-smtp"
)

// goClient is what the scenarios below need from an SMTP client library.
type goClient interface {
	StartTLS(cfg *tls.Config) error
	Auth(mech, user, pass string) error
	Mail(from string) error
	Rcpt(to string) error
	Data(msg string) error
	Close() error
}

// replyCode is the SMTP reply code carried by a client library's error, 0
// for an error that never reached the server.
func replyCode(err error) int {
	var ge *gosmtp.SMTPError
	var te *textproto.Error
	switch {
	case errors.As(err, &ge):
		return ge.Code
	case errors.As(err, &te):
		return te.Code
	}
	return 0
}

// goSMTPClient adapts go-smtp's client.
type goSMTPClient struct {
	*gosmtp.Client
	addr string
}

// StartTLS: go-smtp's client negotiates STARTTLS only while dialling
// (DialStartTLS), so the connection is replaced by one that does.
func (c *goSMTPClient) StartTLS(cfg *tls.Config) error {
	nc, err := gosmtp.DialStartTLS(c.addr, cfg)
	if err != nil {
		return err
	}
	c.Client.Close()
	c.Client = nc
	return nil
}

func (c *goSMTPClient) Auth(mech, user, pass string) error {
	if mech == sasl.Login {
		return c.Client.Auth(sasl.NewLoginClient(user, pass))
	}
	return c.Client.Auth(sasl.NewPlainClient("", user, pass))
}
func (c *goSMTPClient) Mail(from string) error { return c.Client.Mail(from, nil) }
func (c *goSMTPClient) Rcpt(to string) error   { return c.Client.Rcpt(to, nil) }
func (c *goSMTPClient) Data(msg string) error {
	w, err := c.Client.Data()
	if err != nil {
		return err
	}
	if _, err := io.WriteString(w, msg); err != nil {
		return err
	}
	return w.Close()
}

// netSMTPClient adapts the standard library's net/smtp client.
type netSMTPClient struct {
	*netsmtp.Client
	host string
}

func (c netSMTPClient) Auth(mech, user, pass string) error {
	if mech == sasl.Login {
		return c.Client.Auth(loginAuth{user, pass})
	}
	// net/smtp's PLAIN sends only over TLS or to localhost, and checks
	// the server name it was given.
	return c.Client.Auth(netsmtp.PlainAuth("", user, pass, c.host))
}
func (c netSMTPClient) Data(msg string) error {
	w, err := c.Client.Data()
	if err != nil {
		return err
	}
	if _, err := io.WriteString(w, msg); err != nil {
		return err
	}
	return w.Close()
}

// loginAuth is the client side of LOGIN for net/smtp, which has none.
type loginAuth struct{ user, pass string }

func (a loginAuth) Start(*netsmtp.ServerInfo) (string, []byte, error) { return "LOGIN", nil, nil }
func (a loginAuth) Next(challenge []byte, more bool) ([]byte, error) {
	if !more {
		return nil, nil
	}
	if strings.Contains(strings.ToLower(string(challenge)), "user") {
		return []byte(a.user), nil
	}
	return []byte(a.pass), nil
}

// clientLibs dial plain or implicit-TLS connections with each library.
var clientLibs = []struct {
	name string
	dial func(t *testing.T, addr string, tlsCfg *tls.Config) goClient
}{
	{"go-smtp", func(t *testing.T, addr string, cfg *tls.Config) goClient {
		var c *gosmtp.Client
		var err error
		if cfg != nil {
			c, err = gosmtp.DialTLS(addr, cfg)
		} else {
			c, err = gosmtp.Dial(addr)
		}
		if err != nil {
			t.Fatal(err)
		}
		gc := &goSMTPClient{c, addr}
		t.Cleanup(func() { gc.Close() })
		return gc
	}},
	{"net/smtp", func(t *testing.T, addr string, cfg *tls.Config) goClient {
		var conn net.Conn
		var err error
		if cfg != nil {
			conn, err = tls.Dial("tcp", addr, cfg)
		} else {
			conn, err = netDial(addr)
		}
		if err != nil {
			t.Fatal(err)
		}
		host, _, _ := net.SplitHostPort(addr)
		c, err := netsmtp.NewClient(conn, host)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		if err := c.Hello("client.test"); err != nil {
			t.Fatal(err)
		}
		return netSMTPClient{c, host}
	}},
}

// TestGoClientScenarios runs the client scenarios with go-smtp's
// client and with net/smtp (Python's smtplib and curl: clients_test.go).
func TestGoClientScenarios(t *testing.T) {
	type env struct {
		h    *harness
		dial func(addr string, tlsCfg *tls.Config) goClient
	}
	must := func(t *testing.T, err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	wantCode := func(t *testing.T, err error, code int) {
		t.Helper()
		if replyCode(err) != code {
			t.Fatalf("got %v, want a %d reply", err, code)
		}
	}
	scenarios := []struct {
		name   string
		mutate func(*Options)
		run    func(t *testing.T, e env)
		// messages each user must have at the end
		alice, bob int
	}{
		{name: "plain send", run: func(t *testing.T, e env) {
			c := e.dial(e.h.mx, nil)
			must(t, c.Mail("x@remote.test"))
			must(t, c.Rcpt("alice@example.org"))
			must(t, c.Data(simpleMsg))
		}, alice: 1},
		{name: "multi-recipient", run: func(t *testing.T, e env) {
			c := e.dial(e.h.mx, nil)
			must(t, c.Mail("x@remote.test"))
			for _, r := range []string{"alice@example.org", "bob@example.org", "team@example.org"} {
				must(t, c.Rcpt(r))
			}
			must(t, c.Data(simpleMsg))
		}, alice: 1, bob: 1},
		{name: "unknown user and relay without AUTH", run: func(t *testing.T, e env) {
			c := e.dial(e.h.mx, nil)
			must(t, c.Mail("x@remote.test"))
			wantCode(t, c.Rcpt("nobody@example.org"), 550)
			wantCode(t, c.Rcpt("x@relay.test"), 550)
		}},
		{name: "AUTH PLAIN and LOGIN, good and bad; relay with AUTH", run: func(t *testing.T, e env) {
			for _, mech := range []string{sasl.Plain, sasl.Login} {
				wantCode(t, e.dial(e.h.sub, nil).Auth(mech, "alice", "wrong"), 535)
				// A fresh connection: net/smtp hangs up after a failed AUTH.
				c := e.dial(e.h.sub, nil)
				must(t, c.Auth(mech, "alice", "alicepw"))
				must(t, c.Mail("alice@example.org"))
				wantCode(t, c.Rcpt("x@relay.test"), 550)
				must(t, c.Rcpt("bob@example.org"))
				must(t, c.Data(simpleMsg))
			}
		}, bob: 2},
		{name: "remote client: plaintext AUTH refused, STARTTLS then AUTH", mutate: func(o *Options) { o.TrustLoopback = false },
			run: func(t *testing.T, e env) {
				// AUTH is not advertised; sent anyway it gets 538.
				wantCode(t, e.dial(e.h.sub, nil).Auth(sasl.Login, "alice", "alicepw"), 538)
				c := e.dial(e.h.sub, nil)
				must(t, c.StartTLS(e.h.cert.Client))
				must(t, c.Auth(sasl.Plain, "alice", "alicepw"))
				must(t, c.Mail("alice@example.org"))
				must(t, c.Rcpt("bob@example.org"))
				must(t, c.Data(simpleMsg))
			}, bob: 1},
		{name: "587 and 465: MAIL before AUTH, foreign MAIL FROM", run: func(t *testing.T, e env) {
			for _, c := range []goClient{e.dial(e.h.sub, nil), e.dial(e.h.tlsAddr, e.h.cert.Client)} {
				wantCode(t, c.Mail("alice@example.org"), 530)
				must(t, c.Auth(sasl.Plain, "alice", "alicepw"))
				wantCode(t, c.Mail("bob@example.org"), 553)
				must(t, c.Mail("alice@example.org"))
				must(t, c.Rcpt("bob@example.org"))
				must(t, c.Data(simpleMsg))
			}
		}, bob: 2},
	}
	for _, lib := range clientLibs {
		for _, sc := range scenarios {
			t.Run(lib.name+"/"+sc.name, func(t *testing.T) {
				h := start(t, sc.mutate)
				sc.run(t, env{h: h, dial: func(addr string, cfg *tls.Config) goClient { return lib.dial(t, addr, cfg) }})
				if a, b := len(h.messages(t, "alice")), len(h.messages(t, "bob")); a != sc.alice || b != sc.bob {
					t.Fatalf("alice has %d messages, bob %d; want %d, %d", a, b, sc.alice, sc.bob)
				}
			})
		}
	}
}
